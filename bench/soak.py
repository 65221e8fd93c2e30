"""Soak (issue 10, "Load"): mixed streaming and non-streaming calls through the proxy, steady rate.

    .venv/bin/python bench/soak.py --minutes 10 [--rate 50] [--stream-share 0.5]

Starts the benchmark upstream and the proxy (as bench/proxy_bench.py does: separate processes,
uvicorn 1 worker, real PostgreSQL and Redis), sends requests open-loop at `rate` per second
(keep-alive connections reused from a pool), samples the proxy's RSS every `--sample-seconds`,
then counts the usage records written for the run. Passes when: no errors, every stream
complete, RSS after warm-up within 10 % (max/min), and exactly one record per request.
Writes .local/bench/soak-<time>.json and soak-latest.json; exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _loadgen import Connection, Result, build_request, new_event_loop, percentile
from _stack import (
    MODEL,
    OUT,
    SETTINGS,
    Proc,
    ensure_database,
    machine,
    start_proxy,
    start_upstream,
    usage_record_count,
    wait_for_records,
)

IDLE_REUSE_SECONDS = 20.0


def body(stream: bool, index: int) -> dict[str, Any]:
    if stream:
        directive = {"text_chunks": 5, "chunk_delay_ms": 20, "delay_ms": 20}
    else:
        directive = {"delay_ms": 20}
    text = f"Soak request {index} [[fake:{json.dumps(directive, separators=(',', ':'))}]]"
    payload: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 256,
        "messages": [{"role": "user", "content": text}],
    }
    if stream:
        payload["stream"] = True
    return payload


async def soak(args: argparse.Namespace, proxy: Proc, key: str) -> dict[str, Any]:
    duration = args.minutes * 60
    total = int(duration * args.rate)
    free: list[tuple[Connection, float]] = []
    error_types: dict[str, int] = {}
    results: dict[str, list[Result]] = {"stream": [], "plain": []}
    errors: dict[str, int] = {"stream": 0, "plain": 0, "incomplete_stream": 0, "status": 0}
    rss: list[tuple[float, int]] = []
    started = time.perf_counter()
    stream_every = round(1 / args.stream_share) if args.stream_share > 0 else 0

    async def one(index: int) -> None:
        stream = bool(stream_every) and index % stream_every == 0
        kind = "stream" if stream else "plain"
        raw = build_request(
            "127.0.0.1", proxy.port, "/v1/messages", body(stream, index), {"x-api-key": key}
        )
        conn = Connection("127.0.0.1", proxy.port)
        while free:
            candidate, last_used = free.pop()
            # Like any keep-alive client: never reuse a connection the server may be closing
            # (uvicorn's keep-alive timeout here is 60 s) or has closed.
            reader = candidate.reader
            if time.monotonic() - last_used < IDLE_REUSE_SECONDS and not (
                reader is None or reader.at_eof()
            ):
                conn = candidate
                break
            await candidate.close()
        try:
            result = await conn.request(raw)
        except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            errors[kind] += 1
            error_types[type(exc).__name__] = error_types.get(type(exc).__name__, 0) + 1
            await conn.close()
            return
        free.append((conn, time.monotonic()))
        results[kind].append(result)
        if result.status != 200:
            errors["status"] += 1
        elif stream and not result.saw_stop:
            errors["incomplete_stream"] += 1

    async def sampler() -> None:
        while proxy.popen.poll() is None:
            rss.append((round(time.perf_counter() - started, 1), proxy.rss_bytes()))
            await asyncio.sleep(args.sample_seconds)
        print(f"  the proxy exited with status {proxy.popen.returncode}", flush=True)

    sampling = asyncio.create_task(sampler())
    tasks: set[asyncio.Task[None]] = set()
    late = 0
    for index in range(total):
        due = started + index / args.rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        elif wait < -0.1:
            late += 1
        task = asyncio.create_task(one(index))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        if index and index % (args.rate * 60) == 0:
            done = sum(len(v) for v in results.values())
            print(
                f"  {index // args.rate // 60} min: {done} answered, rss {rss[-1][1] >> 20} MB",
                flush=True,
            )
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    sampling.cancel()
    if proxy.popen.poll() is None:
        rss.append((round(elapsed, 1), proxy.rss_bytes()))
    for conn, _ in free:
        await conn.close()

    warm = [mb for t, mb in rss if t >= args.warmup_seconds]
    out: dict[str, Any] = {
        "requests": total,
        "elapsed_s": round(elapsed, 1),
        "achieved_rate": round(total / elapsed, 1),
        "late_sends": late,
        "errors": errors,
        "error_total": sum(errors.values()),
        "error_types": error_types,
    }
    warm_from_ns = (started + args.warmup_seconds) * 1e9
    for kind, items in results.items():
        lat = [r.latency_ns / 1e6 for r in items]
        lat_warm = [r.latency_ns / 1e6 for r in items if r.started_ns >= warm_from_ns]
        out[kind] = {
            "answered": len(items),
            "p50_ms": round(percentile(lat, 50), 2),
            "p99_ms": round(percentile(lat, 99), 2),
            "max_ms": round(max(lat), 2) if lat else None,
            "after_warmup_p50_ms": round(percentile(lat_warm, 50), 2),
            "after_warmup_p99_ms": round(percentile(lat_warm, 99), 2),
        }
    out["rss_mb"] = [(t, round(b / 2**20, 1)) for t, b in rss]
    if warm:
        out["rss_after_warmup_min_mb"] = round(min(warm) / 2**20, 1)
        out["rss_after_warmup_max_mb"] = round(max(warm) / 2**20, 1)
        out["rss_spread_pct"] = round(100 * (max(warm) - min(warm)) / min(warm), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=50, help="requests per second")
    parser.add_argument("--stream-share", type=float, default=0.5, help="share of streams")
    parser.add_argument("--sample-seconds", type=float, default=5.0)
    parser.add_argument("--warmup-seconds", type=float, default=60.0)
    parser.add_argument(
        "--debug", choices=("0", "1"), default="1", help="DEBUG of the proxy (0: production)"
    )
    args = parser.parse_args()
    SETTINGS["debug"] = args.debug
    args.warmup_seconds = min(args.warmup_seconds, args.minutes * 60 / 5)

    key = ensure_database()
    load_before = os.getloadavg()
    procs: list[Proc] = []
    started = time.time()
    try:
        upstream = start_upstream()
        procs.append(upstream)
        proxy = start_proxy(upstream.port)
        procs.append(proxy)
        before = usage_record_count()
        print(f"soak: {args.minutes} min at {args.rate}/s ...", flush=True)
        loop = new_event_loop()
        try:
            res = loop.run_until_complete(soak(args, proxy, key))
        finally:
            loop.close()
        written = wait_for_records(before + res["requests"], timeout=120) - before
        res["records_written"] = written
        res["proxy_exit_status_before_stop"] = proxy.popen.poll()
        if res["proxy_exit_status_before_stop"] is None:
            res["proxy_cpu_seconds"] = round(proxy.cpu_seconds(), 1)
    finally:
        for proc in reversed(procs):
            proc.stop()
    res["checks"] = {
        "no_errors": res["error_total"] == 0,
        "proxy_alive": res["proxy_exit_status_before_stop"] is None,
        "one_record_per_request": res["records_written"] == res["requests"],
        "rss_flat_within_10pct": res.get("rss_spread_pct", 100.0) <= 10.0,
    }
    res["machine"] = machine()
    res["debug"] = args.debug
    res["machine"]["loadavg_before"] = [round(x, 2) for x in load_before]
    res["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    res["command"] = " ".join(["python", "bench/soak.py", *sys.argv[1:]])
    res["started_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(started))
    OUT.mkdir(parents=True, exist_ok=True)
    for name in (f"soak-{stamp}.json", "soak-latest.json"):
        (OUT / name).write_text(json.dumps(res, indent=2))
    summary = {k: v for k, v in res.items() if k not in ("rss_mb", "machine")}
    print(json.dumps(summary, indent=2))
    print(f"results: {OUT / f'soak-{stamp}.json'}")
    sys.exit(0 if all(res["checks"].values()) else 1)


if __name__ == "__main__":
    main()
