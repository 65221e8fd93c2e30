"""Budget enforcement overhead: reserve + settle with four applicable budgets, real Redis.

    DEBUG=1 .venv/bin/python bench/budget_bench.py [--iterations 20000] [--redis-db 14]

Times what the gateway adds per request: `BudgetEnforcer.reserve` (estimator, period windows,
one Lua call across tenant, project, cost center and key budgets plus the plan allowance) and
`BudgetEnforcer.settle` (one Lua call; runs in the record writer's thread, off the request's
path, but measured here too). Rules are pre-loaded and counters exist, as in steady state; no
PostgreSQL is touched. Prints p50/p99 in milliseconds.
"""

import argparse
import asyncio
import os
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenscope.settings")
os.environ.setdefault("DEBUG", "1")

import django

django.setup()

import proxy.gateway  # noqa: E402, F401  (first: the gateway package imports the enforcer)
from proxy.budgets.enforcer import BudgetEnforcer  # noqa: E402
from proxy.budgets.rules import BudgetRule, TenantRules  # noqa: E402
from proxy.gateway.routes import route_match  # noqa: E402

SCHEMA = "t_bench_budgets"
BODY = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 1024,
    "messages": [{"role": "user", "content": "Summarise this support ticket for me. " * 20}],
}


def rules() -> TenantRules:
    budgets = tuple(
        BudgetRule(
            id=index + 1,
            name=scope,
            scope=scope,
            target=target,
            amount_usd=Decimal("1000000"),
            period=period,
            thresholds=(50, 80, 100),
            block=True,
        )
        for index, (scope, target, period) in enumerate(
            [
                ("tenant", None, "month"),
                ("project", "7", "month"),
                ("cost_center", "3", "week"),
                ("key", "key-1", "day"),
            ]
        )
    )
    return TenantRules(
        schema=SCHEMA,
        generation="1",
        time_zone="Europe/Berlin",
        week_starts_on="monday",
        budgets=budgets,
        plan_name="Team",
        monthly_request_limit=10**12,
        rpm_limit=None,
        input_tpm_limit=None,
        output_tpm_limit=None,
    )


async def run(iterations: int, url: str) -> dict[str, list[float]]:
    import json

    enforcer = BudgetEnforcer(url)
    await enforcer.redis.flushdb()
    await enforcer.redis.set(f"ts:budget-gen:{SCHEMA}", "1")
    enforcer._rules[SCHEMA] = (rules(), time.monotonic() + 10**9)

    async def rebuild(schema: str, counter: object) -> None:
        # Steady state: counters exist. They are created empty here instead of from PostgreSQL.
        await enforcer._init(keys=[counter.key], args=["bench", 0, 2**31 - 1])  # type: ignore[attr-defined]

    enforcer._rebuild_from_database = rebuild  # type: ignore[method-assign]
    key = SimpleNamespace(
        id="key-1",
        project_id=7,
        cost_center_id=3,
        owner_id=None,
        rpm_limit=None,
        input_tpm_limit=None,
        output_tpm_limit=None,
        tenant=SimpleNamespace(schema_name=SCHEMA, short_id="benchbudgt"),
    )
    body_bytes = json.dumps(BODY).encode()
    route = route_match("POST", "/v1/messages")
    usage = {"input_tokens": 200, "output_tokens": 300}
    timings: dict[str, list[float]] = {"reserve": [], "settle": [], "total": []}
    for index in range(iterations + 200):
        ex = SimpleNamespace(
            route=route,
            body=BODY,
            body_bytes=body_bytes,
            reservation=None,
            upstream_started=1.0,
            usage=usage,
            record_id=index,
        )
        t0 = time.perf_counter()
        await enforcer.reserve(ex, key)
        t1 = time.perf_counter()
        enforcer.settle_many([(ex, Decimal("0.0051"))])
        t2 = time.perf_counter()
        assert len(ex.reservation.counters) == 5  # four budgets and the plan allowance
        if index >= 200:  # warm-up: scripts loaded, connections open
            timings["reserve"].append((t1 - t0) * 1000)
            timings["settle"].append((t2 - t1) * 1000)
            timings["total"].append((t2 - t0) * 1000)
    await enforcer.redis.flushdb()
    await enforcer.close()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=20_000)
    parser.add_argument("--redis-db", type=int, default=14)
    options = parser.parse_args()
    base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
    timings = asyncio.run(run(options.iterations, f"{base}/{options.redis_db}"))
    for name, values in timings.items():
        ordered = sorted(values)
        p50 = statistics.median(ordered)
        p99 = ordered[int(len(ordered) * 0.99) - 1]
        print(f"{name:8s} p50 {p50:.3f} ms  p99 {p99:.3f} ms  (n={len(values)})")


if __name__ == "__main__":
    main()
