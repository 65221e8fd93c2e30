"""Proxy benchmarks (issue 4): added latency, streaming overhead, 1,000 streams, throughput.

    .venv/bin/python bench/proxy_bench.py [--quick] [--no-litellm]

Starts, as separate processes, the benchmark upstream (proxy/fake_upstream plus a stamping SSE
route, bench/_upstream.py), the proxy (`tokenscope.asgi:application` under uvicorn, 1 worker,
httptools + uvloop when installed, real PostgreSQL and Redis) and LiteLLM's proxy (from
.local/bench/litellm-venv, if installed; see bench/README.md). The load generator is
bench/_loadgen.py in this process. Proxy and direct (client -> upstream) are measured in the
same run with the same client, request and concurrency, in alternating rounds, warm-up
discarded. Prints a table; writes .local/bench/proxy-<time>.json and proxy-latest.json.
Stops every process it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _loadgen import Result, build_request, new_event_loop, percentile, run_closed_loop
from _stack import (
    LITELLM_MASTER_KEY,
    MODEL,
    OUT,
    SETTINGS,
    Proc,
    ensure_database,
    fake_stats,
    machine,
    start_litellm,
    start_proxy,
    start_upstream,
    usage_record_count,
    wait_for_records,
)

HOST = "127.0.0.1"
RAMP_PER_CONNECTION = 2  # a round's first requests on each connection are not steady state


def messages_body(directive: dict[str, Any] | None = None, *, stream: bool = False) -> dict:
    text = "Hi"
    if directive:
        text += " [[fake:" + json.dumps(directive, separators=(",", ":")) + "]]"
    body: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": text}],
    }
    if stream:
        body["stream"] = True
    return body


class Target:
    def __init__(self, name: str, port: int, key: str) -> None:
        self.name = name
        self.port = port
        self.key = key

    def request(self, body: dict, headers: dict[str, str] | None = None) -> bytes:
        return build_request(
            HOST, self.port, "/v1/messages", body, {"x-api-key": self.key, **(headers or {})}
        )


def ms(ns: float) -> float:
    return round(ns / 1e6, 3)


def summary(results: list[Result], errors: int, elapsed: float, attr: str = "latency_ns") -> dict:
    values = [getattr(r, attr) for r in results if r.status == 200]
    bad = sum(1 for r in results if r.status != 200)
    return {
        "n": len(results),
        "errors": errors + bad,
        "rps": round(len(results) / elapsed, 1) if elapsed else 0.0,
        "p50_ms": ms(percentile(values, 50)),
        "p90_ms": ms(percentile(values, 90)),
        "p99_ms": ms(percentile(values, 99)),
        "max_ms": ms(max(values)) if values else None,
    }


async def compare(
    targets: list[Target],
    make: Callable[[Target], bytes],
    *,
    concurrency: int,
    per_round: int,
    rounds: int,
    warmup: int,
    attr: str = "latency_ns",
) -> dict[str, dict]:
    """Alternating rounds (order flipped each round); warm-up per target discarded, and each
    round's ramp (its first `RAMP_PER_CONNECTION` requests per connection, by start time).

    A round opens `concurrency` new connections and sends their first requests all at once: a
    herd that every server behind them then serves one after another, whatever its steady
    state. Kept, it made ~1.6 % of each 2,000-request round and so set the p99 of both sides
    (bench/README.md, "Method"); the figures including it are reported too (`with_ramp`).
    """
    collected: dict[str, list[Result]] = {t.name: [] for t in targets}
    ramps: dict[str, list[Result]] = {t.name: [] for t in targets}
    errors = {t.name: 0 for t in targets}
    elapsed = {t.name: 0.0 for t in targets}
    for target in targets:
        raw = make(target)
        await run_closed_loop(
            HOST, target.port, lambda _i, r=raw: r, concurrency=concurrency, total=warmup
        )
    for round_no in range(rounds):
        order = targets if round_no % 2 == 0 else list(reversed(targets))
        for target in order:
            raw = make(target)
            results, errs, secs = await run_closed_loop(
                HOST, target.port, lambda _i, r=raw: r, concurrency=concurrency, total=per_round
            )
            results.sort(key=lambda r: r.started_ns)
            ramp = RAMP_PER_CONNECTION * concurrency
            ramps[target.name] += results[:ramp]
            collected[target.name] += results[ramp:]
            errors[target.name] += errs
            elapsed[target.name] += secs
    stats = {}
    for name, results in collected.items():
        stats[name] = summary(results, errors[name], elapsed[name], attr)
        stats[name]["with_ramp"] = summary(results + ramps[name], errors[name], elapsed[name], attr)
        stats[name]["rps"] = stats[name]["with_ramp"]["rps"]
    return stats


def added(stats: dict[str, dict], name: str, base: str = "direct") -> dict:
    def difference(ours: dict, theirs: dict) -> dict:
        return {
            f"added_{p}_ms": round(ours[f"{p}_ms"] - theirs[f"{p}_ms"], 3)
            for p in ("p50", "p90", "p99")
        }

    result = difference(stats[name], stats[base])
    result["with_ramp"] = difference(stats[name]["with_ramp"], stats[base]["with_ramp"])
    return result


async def event_relay(
    targets: list[Target],
    *,
    concurrency: int,
    streams: int,
    rounds: int,
    events: int,
    gap_ms: float,
) -> dict:
    collected: dict[str, list[int]] = {t.name: [] for t in targets}
    incomplete = {t.name: 0 for t in targets}
    header = {"x-bench-stamp": f"{events},{gap_ms}"}
    for round_no in range(rounds + 1):  # round 0 is warm-up
        order = targets if round_no % 2 == 0 else list(reversed(targets))
        for target in order:
            raw = target.request(messages_body(stream=True), header)
            results, errs, _ = await run_closed_loop(
                HOST, target.port, lambda _i, r=raw: r, concurrency=concurrency, total=streams
            )
            if round_no == 0:
                continue
            incomplete[target.name] += errs + sum(1 for r in results if not r.saw_stop)
            for r in results:
                collected[target.name] += r.event_delays_ns
    out: dict[str, Any] = {}
    for name, delays in collected.items():
        out[name] = {
            "events": len(delays),
            "incomplete_streams": incomplete[name],
            "p50_ms": ms(percentile(delays, 50)),
            "p90_ms": ms(percentile(delays, 90)),
            "p99_ms": ms(percentile(delays, 99)),
        }
    return out


async def open_streams(proxy: Proc, upstream: Proc, target: Target, count: int) -> dict:
    """`count` concurrent streams held through the proxy; its RSS sampled meanwhile."""
    idle = proxy.rss_bytes()
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(proxy.rss_bytes())
            stop.wait(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    before = fake_stats(upstream.port)
    raw = target.request(messages_body({"text_chunks": 10, "chunk_delay_ms": 500}, stream=True))
    peak_active = 0

    async def watch() -> None:
        nonlocal peak_active
        while not stop.is_set():
            stats = await asyncio.to_thread(fake_stats, upstream.port)
            peak_active = max(peak_active, int(stats["active_streams"]))
            await asyncio.sleep(0.5)

    watcher = asyncio.create_task(watch())
    results, errors, elapsed = await run_closed_loop(
        HOST, target.port, lambda _i: raw, concurrency=count, total=count
    )
    stop.set()
    watcher.cancel()
    sampler.join()
    after_stats = fake_stats(upstream.port)
    return {
        "streams": count,
        "completed": sum(1 for r in results if r.status == 200 and r.saw_stop),
        "errors": errors + sum(1 for r in results if r.status != 200 or not r.saw_stop),
        "seconds": round(elapsed, 1),
        "peak_upstream_active_streams": peak_active,
        "upstream_streams_completed": after_stats["streams_completed"]
        - before["streams_completed"],
        "rss_idle_mb": round(idle / 2**20, 1),
        "rss_peak_mb": round(max(samples) / 2**20, 1),
        "rss_after_mb": round(proxy.rss_bytes() / 2**20, 1),
        "rss_per_stream_kb": round((max(samples) - idle) / count / 1024, 1),
    }


async def throughput(targets: list[Target], *, concurrency: int, seconds: float) -> dict:
    out: dict[str, Any] = {}
    body = messages_body()
    for target in targets:
        raw = target.request(body)
        before = usage_record_count() if target.name == "proxy" else None
        warm, warm_errors, _ = await run_closed_loop(
            HOST, target.port, lambda _i, r=raw: r, concurrency=concurrency, seconds=1.0
        )
        results, errors, elapsed = await run_closed_loop(
            HOST, target.port, lambda _i, r=raw: r, concurrency=concurrency, seconds=seconds
        )
        stats = summary(results, errors, elapsed)
        if before is not None:
            sent = len(results) + errors + len(warm) + warm_errors
            after = wait_for_records(before + sent)
            stats["records_written"] = after - before
            stats["records_expected"] = sent
        out[target.name] = stats
    return out


def print_table(res: dict) -> None:
    rows: list[tuple[str, str, str]] = []
    lat = res["latency"]
    rows.append(
        ("added latency p50 (c=32, non-stream)", f"{lat['added']['added_p50_ms']} ms", "<= 2 ms")
    )
    rows.append(
        ("added latency p99 (c=32, non-stream)", f"{lat['added']['added_p99_ms']} ms", "<= 10 ms")
    )
    ramp = lat["added"]["with_ramp"]
    rows.append(
        (
            "  same, with each round's ramp p50/p99",
            f"{ramp['added_p50_ms']} / {ramp['added_p99_ms']} ms",
            "-",
        )
    )
    sat = res["latency_saturated"]
    rows.append(
        (
            "  same, upstream 0 ms (saturated) p50/p99",
            f"{sat['added']['added_p50_ms']} / {sat['added']['added_p99_ms']} ms",
            "-",
        )
    )
    rows.append(
        ("stream TTFB overhead p50", f"{res['ttfb']['added']['added_p50_ms']} ms", "<= 3 ms")
    )
    ev = res["event_relay"]
    rows.append(("per-event relay delay p50 (proxy-direct)", f"{ev['added_p50_ms']} ms", "<= 1 ms"))
    rows.append(("per-event relay delay p99 (proxy-direct)", f"{ev['added_p99_ms']} ms", "<= 5 ms"))
    op = res["open_streams"]
    rows.append(
        (
            f"{op['streams']} open streams: completed/errors",
            f"{op['completed']}/{op['errors']}",
            "all, 0",
        )
    )
    rows.append(
        ("  proxy RSS idle -> peak", f"{op['rss_idle_mb']} -> {op['rss_peak_mb']} MB", "reported")
    )
    tp = res["throughput"]
    for name, stats in tp.items():
        extra = ""
        if "records_written" in stats:
            extra = f", records {stats['records_written']}/{stats['records_expected']}"
        rows.append(
            (
                f"throughput {name} (c={res['params']['throughput_concurrency']})",
                f"{stats['rps']} req/s, {stats['errors']} errors{extra}",
                "",
            )
        )
    if "litellm" in tp:
        rows.append(("  ours / LiteLLM req/s", f"{res['vs_litellm']['rps_ratio']}x", ">= 3x"))
        rows.append(
            (
                "  ours / LiteLLM added latency p50",
                f"{res['vs_litellm']['added_p50_ratio']}",
                "<= 0.33",
            )
        )
    errs = [
        f"{phase} {res[phase][name]['errors']}"
        for phase in ("latency", "latency_saturated", "ttfb")
        for name in ("direct", "proxy")
    ]
    errs.append(
        f"event_relay {ev['direct']['incomplete_streams']}/{ev['proxy']['incomplete_streams']}"
    )
    rows.append(("errors (direct, proxy per phase)", "; ".join(errs)[:44], "0"))
    width = max(len(r[0]) for r in rows) + 2
    print()
    print(f"{'measure'.ljust(width)}{'result'.ljust(44)}target")
    for name, value, target in rows:
        print(f"{name.ljust(width)}{value.ljust(44)}{target}")


async def run(args: argparse.Namespace, procs: dict[str, Proc], key: str) -> dict:
    q = args.quick
    direct = Target("direct", procs["upstream"].port, "sk-ant-api03-bench-direct")
    proxy = Target("proxy", procs["proxy"].port, key)
    pair = [direct, proxy]
    res: dict[str, Any] = {
        "params": {
            "quick": q,
            "throughput_concurrency": args.throughput_concurrency,
            "workers": args.workers,
        }
    }
    records_start = usage_record_count()
    proxy_requests = 0

    def count(stats: dict, per_round: int, rounds: int, warmup: int) -> int:
        return per_round * rounds + warmup

    print("1. added latency, non-streaming, c=32 ...", flush=True)
    delay = args.upstream_delay_ms
    body = messages_body({"delay_ms": delay} if delay else None)
    per_round, rounds, warmup = (500, 1, 200) if q else (2000, 3, 500)
    lat = await compare(
        pair,
        lambda t: t.request(body),
        concurrency=32,
        per_round=per_round,
        rounds=rounds,
        warmup=warmup,
    )
    lat["added"] = added(lat, "proxy")
    lat["upstream_delay_ms"] = delay
    res["latency"] = lat
    proxy_requests += count(lat, per_round, rounds, warmup)

    body0 = messages_body()
    per_round, rounds, warmup = (1000, 1, 200) if q else (3000, 2, 500)
    sat = await compare(
        pair,
        lambda t: t.request(body0),
        concurrency=32,
        per_round=per_round,
        rounds=rounds,
        warmup=warmup,
    )
    sat["added"] = added(sat, "proxy")
    res["latency_saturated"] = sat
    proxy_requests += count(sat, per_round, rounds, warmup)

    print("2. streaming: TTFB, per-event relay ...", flush=True)
    sbody = messages_body({"delay_ms": delay, "chunk_delay_ms": 5} if delay else None, stream=True)
    per_round, rounds, warmup = (300, 1, 100) if q else (1000, 3, 200)
    ttfb = await compare(
        pair,
        lambda t: t.request(sbody),
        concurrency=32,
        per_round=per_round,
        rounds=rounds,
        warmup=warmup,
        attr="ttfb_ns",
    )
    ttfb["added"] = added(ttfb, "proxy")
    res["ttfb"] = ttfb
    proxy_requests += count(ttfb, per_round, rounds, warmup)

    streams, rounds = (64, 1) if q else (200, 3)
    ev = await event_relay(
        pair, concurrency=32, streams=streams, rounds=rounds, events=20, gap_ms=10
    )
    ev["added_p50_ms"] = round(ev["proxy"]["p50_ms"] - ev["direct"]["p50_ms"], 3)
    ev["added_p99_ms"] = round(ev["proxy"]["p99_ms"] - ev["direct"]["p99_ms"], 3)
    res["event_relay"] = ev
    proxy_requests += streams * (rounds + 1)

    print("3. throughput (records written) and LiteLLM ...", flush=True)
    targets = [direct, proxy]
    if "litellm" in procs:
        targets.append(Target("litellm", procs["litellm"].port, LITELLM_MASTER_KEY))
    secs = 5.0 if q else 15.0
    tp = await throughput(targets, concurrency=args.throughput_concurrency, seconds=secs)
    res["throughput"] = tp
    proxy_requests += int(tp["proxy"]["records_expected"])
    if "litellm" in procs:
        lite = targets[2]
        per_round, rounds, warmup = (300, 1, 100) if q else (1000, 2, 200)
        ll = await compare(
            [direct, proxy, lite],
            lambda t: t.request(body),
            concurrency=32,
            per_round=per_round,
            rounds=rounds,
            warmup=warmup,
        )
        ll["added_proxy"] = added(ll, "proxy")
        ll["added_litellm"] = added(ll, "litellm")
        res["latency_vs_litellm"] = ll
        proxy_requests += count(ll, per_round, rounds, warmup)
        res["vs_litellm"] = {
            "rps_ratio": round(tp["proxy"]["rps"] / max(tp["litellm"]["rps"], 0.1), 2),
            "added_p50_ratio": round(
                ll["added_proxy"]["added_p50_ms"] / ll["added_litellm"]["added_p50_ms"], 3
            )
            if ll["added_litellm"]["added_p50_ms"] > 0
            else None,
            "added_p99_ratio": round(
                ll["added_proxy"]["added_p99_ms"] / ll["added_litellm"]["added_p99_ms"], 3
            )
            if ll["added_litellm"]["added_p99_ms"] > 0
            else None,
        }
    # Last: 1,000 streams leave ~1,000 idle connections in the gateway's upstream pool for its
    # keep-alive expiry (30 s), which slows every later request (see bench/README.md).
    print("4. open streams ...", flush=True)
    n_open = 200 if q else 1000
    res["open_streams"] = await open_streams(procs["proxy"], procs["upstream"], proxy, n_open)
    proxy_requests += n_open

    total = wait_for_records(records_start + proxy_requests) - records_start
    res["records_whole_run"] = {"proxy_requests": proxy_requests, "records_written": total}
    return res


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer requests (about 1 minute)")
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument(
        "--upstream-delay-ms",
        type=int,
        default=50,
        help="fake upstream latency for the added-latency runs",
    )
    parser.add_argument("--throughput-concurrency", type=int, default=32)
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="server processes of the proxy and of LiteLLM (2: the Procfile's default)",
    )
    parser.add_argument(
        "--debug", choices=("0", "1"), default="1", help="DEBUG of the proxy (0: production)"
    )
    args = parser.parse_args()
    SETTINGS["debug"] = args.debug

    key = ensure_database()
    load_before = os.getloadavg()
    procs: dict[str, Proc] = {}
    started = time.time()
    try:
        procs["upstream"] = start_upstream()
        procs["proxy"] = start_proxy(procs["upstream"].port, args.workers)
        if not args.no_litellm:
            lite = start_litellm(procs["upstream"].port, args.workers)
            if lite is not None:
                procs["litellm"] = lite
            else:
                print("LiteLLM not installed in .local/bench/litellm-venv: skipped", flush=True)
        loop = new_event_loop()
        try:
            res = loop.run_until_complete(run(args, procs, key))
        finally:
            loop.close()
        res["proxy_cpu_seconds"] = round(procs["proxy"].cpu_seconds(), 1)
    finally:
        for proc in reversed(list(procs.values())):
            proc.stop()
    res["machine"] = machine()
    res["debug"] = args.debug
    res["machine"]["loadavg_before"] = [round(x, 2) for x in load_before]
    res["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    res["command"] = " ".join(["python", "bench/proxy_bench.py", *sys.argv[1:]])
    res["started_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
    res["duration_s"] = round(time.time() - started, 1)
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(started))
    for name in (f"proxy-{stamp}.json", "proxy-latest.json"):
        (OUT / name).write_text(json.dumps(res, indent=2))
    print_table(res)
    print(f"\nrecords over the whole run: {res['records_whole_run']}")
    print(f"results: {OUT / f'proxy-{stamp}.json'}")


if __name__ == "__main__":
    main()
