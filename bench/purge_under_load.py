"""Retention purge under load (issue 9): purge ~10M expired usage records while the proxy serves.

    .venv/bin/python bench/purge_under_load.py [--rate 100] [--baseline 60] [--max-purge 600]

Starts the benchmark upstream and the proxy (one worker, production settings: DEBUG=0) through
bench/_stack.py, then drives an open-loop load (a fixed request rate, non-streaming, each request
timed from its scheduled send time, so a stalled proxy cannot hide queueing) for a warm-up, a
baseline period, the purge and a short after-period. The purge runs in a separate process:
`privacy.retention.delete_before(UsageRecord, "created_at", cutoff, batch=5000)` against the
scratch database ts_bench (tenant `bench-insight`, seeded by bench/insight_bench.py), on the
same PostgreSQL server and machine as the proxy's own database. It DELETES those rows: re-seed
with `bench/insight_bench.py seed --rows 10000000` (~14 min) before running it again.

Per request: the proxy's own `x-tokenscope-overhead-ms` header and the end-to-end latency.
Per purge batch: rows and duration. Writes .local/bench/purge-under-load-<time>.json.
Stops every process it started (by pid).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _loadgen import Connection, build_request, new_event_loop, percentile
from _stack import (
    MODEL,
    OUT,
    PY,
    ROOT,
    SETTINGS,
    Proc,
    ensure_database,
    machine,
    server_env,
    start_proxy,
    start_upstream,
)

HOST = "127.0.0.1"
PURGE_DB_URL = os.environ.get("PURGE_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ts_bench")
PURGE_SCHEMA = "t_bench_insight"
OVERHEAD_RE = re.compile(rb"x-tokenscope-overhead-ms: *([0-9.]+)")
LENGTH_RE = re.compile(rb"content-length: *(\d+)")


class StopPurge(Exception):
    pass


def purge_child(args: argparse.Namespace) -> None:
    """The purge process: one JSON line per batch on stdout (monotonic clock, shared)."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenscope.settings")
    import django

    django.setup()
    from django_tenants.utils import schema_context

    from audit.models import UsageRecord
    from privacy.retention import delete_before

    cutoff = datetime.fromisoformat(args.cutoff)
    deadline = time.monotonic() + args.max_seconds
    print(json.dumps({"start_ns": time.perf_counter_ns()}), flush=True)

    def on_batch(deleted: int, seconds: float) -> None:
        line = {"t_ns": time.perf_counter_ns(), "n": deleted, "s": round(seconds, 6)}
        print(json.dumps(line), flush=True)
        if time.monotonic() > deadline:
            raise StopPurge  # the batch is committed already; stop at the time cap

    with schema_context(args.schema):
        try:
            total = delete_before(
                UsageRecord,
                "created_at",
                cutoff,
                batch=args.batch,
                on_batch=on_batch,
                yield_ratio=args.yield_ratio,
            )
            done = True
        except StopPurge:
            total, done = -1, False
    print(json.dumps({"end_ns": time.perf_counter_ns(), "total": total, "done": done}), flush=True)


def psql(sql: str, db: str = "ts_bench") -> str:
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-tAc", sql],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


async def send(conn: Connection, raw: bytes) -> tuple[int, float | None]:
    if conn.reader is None:
        await conn.open()
    assert conn.reader is not None
    assert conn.writer is not None
    conn.writer.write(raw)
    head = await conn.reader.readuntil(b"\r\n\r\n")
    lower = head.lower()
    match = LENGTH_RE.search(lower)
    if match and int(match.group(1)):
        await conn.reader.readexactly(int(match.group(1)))
    overhead = OVERHEAD_RE.search(lower)
    if b"connection: close" in lower:
        await conn.close()
    return int(head[9:12]), float(overhead.group(1)) if overhead else None


async def open_loop(port: int, raw: bytes, rate: float, stop: asyncio.Event, out: list) -> None:
    """Send at a fixed rate regardless of answers; rows (scheduled_ns, end_ns, status, ovh,
    resent on a new connection)."""
    idle: list[Connection] = []
    interval = int(1e9 / rate)
    tasks: set[asyncio.Task] = set()

    async def one(scheduled: int) -> None:
        reused, retried = bool(idle), False
        conn = idle.pop() if idle else Connection(HOST, port)
        try:
            try:
                status, overhead = await send(conn, raw)
            except asyncio.IncompleteReadError as error:
                # A keep-alive connection the server closed while it sat idle (after a burst
                # needed more connections than usual): send again on a new one, once, as HTTP
                # clients do. Counted, and timed from the scheduled send all the same.
                if not reused or error.partial:
                    raise
                await conn.close()
                retried = True
                status, overhead = await send(conn, raw)
        except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError):
            await conn.close()
            out.append((scheduled, time.perf_counter_ns(), -1, None, retried))
            return
        out.append((scheduled, time.perf_counter_ns(), status, overhead, retried))
        idle.append(conn)

    next_at = time.perf_counter_ns()
    while not stop.is_set():
        next_at += interval
        delay = next_at - time.perf_counter_ns()
        if delay > 0:
            await asyncio.sleep(delay / 1e9)
        task = asyncio.create_task(one(next_at))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    for conn in idle:
        await conn.close()


def stats(rows: list, start_ns: int, end_ns: int) -> dict[str, Any]:
    window = [r for r in rows if start_ns <= r[0] < end_ns]
    ok = [r for r in window if r[2] == 200]
    lat = [(r[1] - r[0]) / 1e6 for r in ok]
    ovh = [r[3] for r in ok if r[3] is not None]
    secs = (end_ns - start_ns) / 1e9
    return {
        "seconds": round(secs, 1),
        "requests": len(window),
        "rps": round(len(window) / secs, 1) if secs else 0,
        "errors": len(window) - len(ok),
        "error_statuses": dict(Counter(r[2] for r in window if r[2] != 200)),
        "stale_connection_resends": sum(1 for r in window if r[4]),
        "overhead_p50_ms": round(percentile(ovh, 50), 3),
        "overhead_p99_ms": round(percentile(ovh, 99), 3),
        "overhead_max_ms": round(max(ovh), 3) if ovh else None,
        "latency_p50_ms": round(percentile(lat, 50), 3),
        "latency_p99_ms": round(percentile(lat, 99), 3),
        "latency_max_ms": round(max(lat), 3) if lat else None,
    }


def start_purge(
    cutoff: datetime, batch: int, max_seconds: float, yield_ratio: float
) -> subprocess.Popen:
    env = server_env(DATABASE_URL=PURGE_DB_URL)
    args = [
        str(PY), str(Path(__file__).resolve()), "purge", "--cutoff", cutoff.isoformat(),
        "--batch", str(batch), "--max-seconds", str(max_seconds), "--schema", PURGE_SCHEMA,
        "--yield-ratio", str(yield_ratio),
    ]  # fmt: skip
    return subprocess.Popen(
        args, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True
    )


async def run(args: argparse.Namespace, port: int, key: str, cutoff: datetime) -> dict:
    delay = args.upstream_delay_ms
    text = "Hi" + (f' [[fake:{{"delay_ms":{delay}}}]]' if delay else "")
    body = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": text}]}
    raw = build_request(HOST, port, "/v1/messages", body, {"x-api-key": key})
    rows: list = []
    stop = asyncio.Event()
    loader = asyncio.create_task(open_loop(port, raw, args.rate, stop, rows))
    print(f"warm-up {args.warmup}s, baseline {args.baseline}s at {args.rate} req/s ...", flush=True)
    await asyncio.sleep(args.warmup)
    base_start = time.perf_counter_ns()
    await asyncio.sleep(args.baseline)
    base_end = time.perf_counter_ns()
    print(f"baseline: {stats(rows, base_start, base_end)}", flush=True)
    print(
        f"purge: rows with created_at < {cutoff.isoformat()} (batch {args.batch}) ...", flush=True
    )
    child = start_purge(cutoff, args.batch, args.max_purge, args.yield_ratio)
    events: list[dict] = []

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("{"):
                events.append(json.loads(line))
                batches = sum(1 for e in events if "n" in e)
                if batches % 200 == 0 and "n" in events[-1]:
                    print(f"  {batches} batches", flush=True)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        while child.poll() is None:
            await asyncio.sleep(0.5)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
        child.wait(30)
    reader.join(10)
    purge_end_wall = time.perf_counter_ns()
    after_start = purge_end_wall
    await asyncio.sleep(args.after)
    after_end = time.perf_counter_ns()
    stop.set()
    await loader
    begin = next((e["start_ns"] for e in events if "start_ns" in e), purge_end_wall)
    end = next((e["end_ns"] for e in events if "end_ns" in e), purge_end_wall)
    batch_rows = [e for e in events if "n" in e]
    durations = sorted(e["s"] for e in batch_rows)
    deleted = sum(e["n"] for e in batch_rows)
    secs = (end - begin) / 1e9
    purge = {
        "cutoff": cutoff.isoformat(),
        "batch": args.batch,
        "deleted": deleted,
        "seconds": round(secs, 1),
        "rows_per_s": round(deleted / secs) if secs else 0,
        "finished": any(e.get("done") for e in events),
        "batches": len(batch_rows),
        "batch_median_ms": round(statistics.median(durations) * 1000, 1) if durations else None,
        "batch_p99_ms": round(percentile(durations, 99) * 1000, 1) if durations else None,
        "batch_max_ms": round(durations[-1] * 1000, 1) if durations else None,
        "exit_code": child.returncode,
    }
    baseline = stats(rows, base_start, base_end)
    during = stats(rows, begin, end)
    res: dict[str, Any] = {
        "params": {
            "rate": args.rate,
            "upstream_delay_ms": delay,
            "warmup_s": args.warmup,
            "baseline_s": args.baseline,
            "after_s": args.after,
            "max_purge_s": args.max_purge,
            "yield_ratio": args.yield_ratio,
        },
        "baseline": baseline,
        "during_purge": during,
        "after_purge": stats(rows, after_start, after_end),
        "purge": purge,
        "overhead_p99_ratio": round(during["overhead_p99_ms"] / baseline["overhead_p99_ms"], 2),
        "latency_p99_ratio": round(during["latency_p99_ms"] / baseline["latency_p99_ms"], 2),
    }
    res["p99_overhead_below_2x"] = res["overhead_p99_ratio"] < 2.0
    if not purge["finished"] and purge["rows_per_s"]:
        remaining = int(psql(f"select count(*) from {PURGE_SCHEMA}.audit_usagerecord"))  # noqa: S608
        res["purge"]["rows_left"] = remaining
        res["purge"]["extrapolated_10m_s"] = round(10_000_000 / purge["rows_per_s"])
    return res


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "purge":
        child = argparse.ArgumentParser()
        child.add_argument("purge")
        child.add_argument("--cutoff", required=True)
        child.add_argument("--batch", type=int, default=5000)
        child.add_argument("--max-seconds", type=float, default=600)
        child.add_argument("--schema", default=PURGE_SCHEMA)
        child.add_argument("--yield-ratio", type=float, default=1.0)
        purge_child(child.parse_args())
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--baseline", type=float, default=60.0)
    parser.add_argument("--after", type=float, default=20.0)
    parser.add_argument("--max-purge", type=float, default=600.0, help="purge time cap, seconds")
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--upstream-delay-ms", type=int, default=50)
    parser.add_argument(
        "--yield-ratio",
        type=float,
        default=1.0,
        help="rest after each batch, as a multiple of its duration (1.0: as shipped; 0: none)",
    )
    parser.add_argument(
        "--keep-hours", type=float, default=6.0, help="keep the newest N hours of records"
    )
    args = parser.parse_args()
    # SIGTERM (e.g. `timeout`) unwinds through the finally blocks that stop every process.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    SETTINGS["debug"] = "0"
    table = f"{PURGE_SCHEMA}.audit_usagerecord"
    newest = psql(f"select max(created_at) at time zone 'UTC' from {table}")  # noqa: S608
    stale = int(psql(f"select reltuples::bigint from pg_class where oid = '{table}'::regclass"))  # noqa: S608
    cutoff = datetime.fromisoformat(newest).replace(tzinfo=UTC) - timedelta(hours=args.keep_hours)
    print(f"ts_bench: ~{stale:,} records, newest {newest}, cutoff {cutoff}", flush=True)
    key = ensure_database()
    load_before = os.getloadavg()
    procs: dict[str, Proc] = {}
    started = time.time()
    try:
        procs["upstream"] = start_upstream()
        procs["proxy"] = start_proxy(procs["upstream"].port)
        loop = new_event_loop()
        try:
            res = loop.run_until_complete(run(args, procs["proxy"].port, key, cutoff))
        finally:
            loop.close()
        res["proxy_cpu_seconds"] = round(procs["proxy"].cpu_seconds(), 1)
    finally:
        for proc in reversed(list(procs.values())):
            proc.stop()
    res["records_before_estimate"] = stale
    res["machine"] = machine()
    res["machine"]["loadavg_before"] = [round(x, 2) for x in load_before]
    res["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    res["command"] = " ".join(["python", "bench/purge_under_load.py", *sys.argv[1:]])
    res["started_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
    res["duration_s"] = round(time.time() - started, 1)
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(started))
    for name in (f"purge-under-load-{stamp}.json", "purge-under-load-latest.json"):
        (OUT / name).write_text(json.dumps(res, indent=2))
    print(json.dumps({k: v for k, v in res.items() if k != "machine"}, indent=2))
    print(f"results: {OUT / f'purge-under-load-{stamp}.json'}")


if __name__ == "__main__":
    main()
