"""Run the fake upstream with uvicorn: in a background thread (tests) or as a process."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from proxy.fake_upstream.app import FakeUpstream, create_app
from tokenscope.lib.asgi_server import serve_in_thread

_EXPECTED = "ASGI callable returned without completing response."


class _QuietDrops(logging.Filter):
    """The `drop` fault ends responses early on purpose: don't log that as a server error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _EXPECTED


def quiet_drop_logs() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())


@dataclass
class RunningFake:
    app: FakeUpstream
    base_url: str  # e.g. http://127.0.0.1:54321


@contextmanager
def running_fake_upstream(
    host: str = "127.0.0.1", port: int = 0, **app_kwargs: Any
) -> Iterator[RunningFake]:
    """Serve a new fake upstream on a free port in a daemon thread; stop it on exit."""
    quiet_drop_logs()
    app = create_app(**app_kwargs)
    with serve_in_thread(app, host=host, port=port) as base_url:
        yield RunningFake(app=app, base_url=base_url)
