# The two set-up commands: `make run` (the product with demo data) and `make test` (every gate).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test venv lock bench clean

$(VENV)/.installed: requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check uv==0.13.9
	$(VENV)/bin/uv pip sync -q requirements.lock --python $(PY)
	touch $@

venv: $(VENV)/.installed

run: venv
	$(PY) bin/devstack.py run

test: venv
	$(PY) bin/devstack.py test $(ARGS)

# Re-resolve dependencies after editing pyproject.toml.
lock: venv
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --python-version 3.11 -q -o requirements.lock

clean:
	rm -rf $(VENV) .local
