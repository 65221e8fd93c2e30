"""A small HTTP/1.1 keep-alive load generator on raw asyncio streams (uvloop when installed).

Deliberately minimal so it perturbs the 2-core machine as little as possible: no HTTP library,
one connection per concurrent client, requests prebuilt as bytes, timings from
time.perf_counter_ns() (CLOCK_MONOTONIC, shared with the servers' processes on Linux).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

STAMP_RE = re.compile(rb'"bench_ts":(\d+)')


def build_request(
    host: str, port: int, path: str, body: dict, headers: dict[str, str] | None = None
) -> bytes:
    payload = json.dumps(body, separators=(",", ":")).encode()
    lines = [
        f"POST {path} HTTP/1.1",
        f"host: {host}:{port}",
        "content-type: application/json",
        "anthropic-version: 2023-06-01",
        f"content-length: {len(payload)}",
    ]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


@dataclass
class Result:
    status: int
    started_ns: int
    first_byte_ns: int  # first body byte (streams) or headers (plain answers)
    finished_ns: int
    body: bytes = b""
    event_delays_ns: list[int] = field(default_factory=list)
    events: int = 0
    saw_stop: bool = False

    @property
    def latency_ns(self) -> int:
        return self.finished_ns - self.started_ns

    @property
    def ttfb_ns(self) -> int:
        return self.first_byte_ns - self.started_ns


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=2**20)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def request(self, raw: bytes, *, keep_body: bool = False) -> Result:
        if self.reader is None:
            await self.open()
        assert self.reader is not None
        assert self.writer is not None
        reader = self.reader
        started = time.perf_counter_ns()
        self.writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        headers_at = time.perf_counter_ns()
        status = int(head[9:12])
        lower = head.lower()
        close = b"connection: close" in lower
        result = Result(status, started, headers_at, headers_at)
        if b"transfer-encoding: chunked" in lower:
            await self._read_chunked(reader, result, keep_body)
        else:
            match = re.search(rb"content-length: *(\d+)", lower)
            length = int(match.group(1)) if match else 0
            body = await reader.readexactly(length) if length else b""
            if keep_body:
                result.body = body
        result.finished_ns = time.perf_counter_ns()
        if close:
            await self.close()
        return result

    async def _read_chunked(
        self, reader: asyncio.StreamReader, result: Result, keep_body: bool
    ) -> None:
        pending = b""
        first = True
        parts: list[bytes] = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            chunk = (await reader.readexactly(size + 2))[:-2]
            now = time.perf_counter_ns()
            if first:
                result.first_byte_ns = now
                first = False
            if keep_body:
                parts.append(chunk)
            pending += chunk
            if b"\n\n" in pending:
                *complete, pending = pending.split(b"\n\n")
                for event in complete:
                    result.events += 1
                    if b"message_stop" in event:
                        result.saw_stop = True
                    stamp = STAMP_RE.search(event)
                    if stamp:
                        result.event_delays_ns.append(now - int(stamp.group(1)))
        result.body = b"".join(parts)


async def run_closed_loop(
    host: str,
    port: int,
    make_request: Callable[[int], bytes],
    *,
    concurrency: int,
    total: int | None = None,
    seconds: float | None = None,
    keep_body: bool = False,
) -> tuple[list[Result], int, float]:
    """`concurrency` connections each send back-to-back until `total` requests or `seconds`.

    Returns (results, errors, elapsed seconds). Transport errors count as errors; the
    connection is reopened.
    """
    results: list[Result] = []
    errors = 0
    counter = 0
    deadline = time.perf_counter() + seconds if seconds else None

    def next_index() -> int | None:
        nonlocal counter
        if total is not None and counter >= total:
            return None
        if deadline is not None and time.perf_counter() >= deadline:
            return None
        counter += 1
        return counter - 1

    async def worker() -> None:
        nonlocal errors
        conn = Connection(host, port)
        try:
            while (index := next_index()) is not None:
                try:
                    results.append(await conn.request(make_request(index), keep_body=keep_body))
                except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError):
                    errors += 1
                    await conn.close()
        finally:
            await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results, errors, time.perf_counter() - started


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[rank]


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
