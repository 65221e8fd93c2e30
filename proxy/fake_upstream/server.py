"""Run the fake upstream with uvicorn: in a background thread (tests) or as a process."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

from proxy.fake_upstream.app import FakeUpstream, create_app

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
    server: uvicorn.Server


@contextmanager
def running_fake_upstream(
    host: str = "127.0.0.1", port: int = 0, **app_kwargs: Any
) -> Iterator[RunningFake]:
    """Serve a new fake upstream on a free port in a daemon thread; stop it on exit."""
    quiet_drop_logs()
    app = create_app(**app_kwargs)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        loop="asyncio",
        http="httptools",
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("fake upstream did not start")
        time.sleep(0.01)
    bound_port = sock.getsockname()[1]
    try:
        yield RunningFake(app=app, base_url=f"http://{host}:{bound_port}", server=server)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
