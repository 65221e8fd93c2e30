"""Processes and database for the proxy benchmarks: fake upstream, the proxy, LiteLLM.

Every process is started here with its own session and stopped by its pid (never by name).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = ROOT / ".venv" / "bin" / "python"
OUT = ROOT / ".local" / "bench"
LOGS = OUT / "logs"
LITELLM_VENV = OUT / "litellm-venv"

DB_NAME = os.environ.get("BENCH_DB", "ts_proxybench_run")
DB_URL = os.environ.get("BENCH_DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{DB_NAME}")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
TENANT = "bench"
PLAN = "business"
SCHEMA = "t_bench"
ANTHROPIC_KEY = "sk-ant-api03-bench-0000000000000000000000000000000000000000-AAAA"
MODEL = "claude-sonnet-4-5"
LITELLM_MASTER_KEY = "sk-bench-litellm-master-0123456789abcdef0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# DEBUG=1 (the default) uses the development KEK; with --debug 0 the same KEK is passed
# explicitly, so production settings (no query log, no debug cursor) read the same keys.
DEV_LOCAL_KEK = "ZGV2LW9ubHkta2VrLWZvci10b2tlbnNjb3BlLXRlc3Q="
SETTINGS = {"debug": "1"}


def server_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TOKENSCOPE_TESTING", None)
    if SETTINGS["debug"] == "0":
        env.update(TOKENSCOPE_LOCAL_KEK=DEV_LOCAL_KEK, TOKENSCOPE_LOCAL_KEK_VERSION="dev")
    env.update(
        DATABASE_URL=DB_URL,
        REDIS_URL=REDIS_URL,
        DEBUG=SETTINGS["debug"],
        DJANGO_SECRET_KEY="bench-only-secret-key-not-for-production-0123456789abcdef",  # noqa: S106
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class Proc:
    def __init__(self, name: str, args: list[str], env: dict[str, str], port: int) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.port = port
        self.log = LOGS / f"{name}.log"
        handle = self.log.open("w")
        self.popen = subprocess.Popen(
            args, env=env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        handle.close()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited early; see {self.log}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.5),
            ):
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not listen on {self.port} within {timeout}s")

    def _tree(self) -> list[Any]:
        """The server's process and its children (the proxy's record writer process)."""
        import psutil

        process = psutil.Process(self.pid)
        return [process, *process.children(recursive=True)]

    def rss_bytes(self) -> int:
        """Resident memory of the server and its children."""
        return sum(int(p.memory_info().rss) for p in self._tree())

    def cpu_seconds(self) -> float:
        """CPU time of the server and its children."""
        return sum(float(t.user + t.system) for t in (p.cpu_times() for p in self._tree()))

    def stop(self) -> None:
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)  # its own session: itself and its children
        try:
            self.popen.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)


def start_upstream() -> Proc:
    port = free_port()
    proc = Proc(
        "upstream", [str(PY), "bench/_upstream.py", "--port", str(port)], server_env(), port
    )
    proc.wait_ready()
    return proc


def start_proxy(upstream_port: int, workers: int = 1) -> Proc:
    """The proxy as the Procfile's `web` runs it: gunicorn, the production worker class (uvicorn
    with uvloop and httptools, no proxy headers), each worker on a listening socket of its own
    (`--reuse-port`, so the kernel spreads new connections over the workers)."""
    port = free_port()
    args = [
        str(PY), "-m", "gunicorn", "tokenscope.asgi:application",
        "-k", "tokenscope.workers.Worker", "--workers", str(workers), "--reuse-port",
        "--bind", f"127.0.0.1:{port}", "--backlog", "4096", "--keep-alive", "60",
        "--log-level", "warning",
    ]  # fmt: skip
    env = server_env(ANTHROPIC_UPSTREAM_URL=f"http://127.0.0.1:{upstream_port}")
    proc = Proc("proxy", args, env, port)
    proc.wait_ready()
    return proc


def litellm_version() -> str | None:
    python = LITELLM_VENV / "bin" / "python"
    if not python.exists():
        return None
    result = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def start_litellm(upstream_port: int, workers: int = 1) -> Proc | None:
    """LiteLLM's proxy in its own venv, no database (no spend logs)."""
    binary = LITELLM_VENV / "bin" / "litellm"
    if not binary.exists():
        return None
    config = OUT / "litellm-config.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: anthropic/{MODEL}\n"
        f"      api_base: http://127.0.0.1:{upstream_port}\n"
        f"      api_key: {ANTHROPIC_KEY}\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "  drop_params: true\n"
        "  set_verbose: false\n"
    )
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "VIRTUAL_ENV")
    }
    env.update(
        LITELLM_MASTER_KEY=LITELLM_MASTER_KEY,
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_LOG="ERROR",
        LITELLM_TELEMETRY="False",
        DISABLE_SCHEMA_UPDATE="True",
        PATH=f"{LITELLM_VENV / 'bin'}:{env.get('PATH', '')}",
    )
    args = [str(binary), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    args += ["--num_workers", str(workers)]
    proc = Proc("litellm", args, env, port)
    proc.wait_ready(timeout=180)
    return proc


def manage(*args: str) -> dict[str, Any]:
    result = subprocess.run(
        [str(PY), "manage.py", *args], env=server_env(), cwd=ROOT, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {args[0]} failed: {result.stderr[-2000:]}")
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def _psql(sql: str, db: str = DB_NAME) -> str:
    result = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-tAc", sql],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    return result.stdout.strip()


def ensure_database() -> str:
    """Create the bench database, tenant and Anthropic key if missing; return a proxy key."""
    if not _psql(f"select 1 from pg_database where datname = '{DB_NAME}'", "postgres"):  # noqa: S608
        _psql(f'create database "{DB_NAME}"', "postgres")
    key_file = OUT / "bench-proxy-key.json"
    print("migrate_schemas on the bench database ...", flush=True)
    manage("migrate_schemas")  # every run: other work adds migrations to the tree
    has_schema = _psql(f"select 1 from pg_namespace where nspname = '{SCHEMA}'")  # noqa: S608
    if not has_schema:
        print("creating the bench tenant and keys ...", flush=True)
        manage(
            "tenant_add", "--slug", TENANT, "--name", "Bench",
            "--owner-email", "o@bench.example.com", "--owner-password", "a-long-password-123",
            "--json",
        )  # fmt: skip
        manage("anthropic_key_set", "--tenant", TENANT, "--key", ANTHROPIC_KEY, "--json")
        key_file.unlink(missing_ok=True)
    # A paying plan (the free plan stops at 10,000 requests a month); the plan's allowance check
    # stays on the hot path. Then a clean Redis DB (the bench's own): counters rebuilt from records.
    _psql(
        "update public.tenants_tenant set plan_id = (select id from public.tenants_plan"  # noqa: S608
        f" where slug = '{PLAN}') where slug = '{TENANT}'"
    )
    subprocess.run(
        [str(PY), "-c", f"import redis; redis.Redis.from_url('{REDIS_URL}').flushdb()"], check=True
    )
    if key_file.exists():
        return str(json.loads(key_file.read_text())["key"])
    created = manage(
        "proxy_key_add", "--tenant", TENANT, "--project", "P", "--cost-center", "C",
        "--create", "--json",
    )  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    key_file.write_text(json.dumps({"key": created["key"]}))
    key_file.chmod(0o600)
    return str(created["key"])


def usage_record_count() -> int:
    return int(_psql(f"select count(*) from {SCHEMA}.audit_usagerecord"))  # noqa: S608


def wait_for_records(expected: int, timeout: float = 60.0) -> int:
    """Poll until the count reaches `expected` and then stays put for a second."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        count = usage_record_count()
        if count >= expected and count == last:
            return count
        last = count
        time.sleep(1.0)
    return usage_record_count()


def fake_stats(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_fake/stats", timeout=5) as response:
        return dict(json.loads(response.read()))


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, StopIteration):
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        mem_kb = int(next(x for x in meminfo if x.startswith("MemTotal")).split()[1])
    versions = subprocess.run(
        [
            str(PY),
            "-c",
            "import importlib.metadata as m\n"
            "for p in ('gunicorn','uvicorn','uvloop','httptools','aiohttp','django','psycopg'):\n"
            "    try: print(p, m.version(p))\n"
            "    except m.PackageNotFoundError: print(p, '-')",
        ],
        capture_output=True,
        text=True,
    ).stdout.split("\n")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "packages": dict(line.split(" ", 1) for line in versions if line),
        "litellm": litellm_version(),
        "postgres": _psql("show server_version"),
        "wrk": shutil.which("wrk") is not None,
    }
