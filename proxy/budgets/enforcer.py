"""Reserve before forwarding, settle after: budgets, the plan allowance and rate limits.

One Lua call (`scripts.RESERVE`) checks and reserves every applicable counter at once, all or
nothing. The record writer settles each exchange exactly once with its exact cost
(`BudgetEnforcer.settle`), which releases the unused part of the reservation. Counters missing
from Redis are rebuilt from usage records in PostgreSQL. With Redis unreachable, a request
under a blocking budget is refused (503, fail closed); otherwise it passes and the counters it
touched are rebuilt once Redis answers again.
"""

import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import redis
import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone
from redis.exceptions import RedisError

from proxy.budgets.estimator import request_worst_case
from proxy.budgets.periods import PeriodWindow, minute_window, period_window
from proxy.budgets.rebuild import budget_spent_nano, plan_requests
from proxy.budgets.rules import (
    BudgetRule,
    TenantRules,
    generation_key,
    nano_to_usd,
    tenant_rules_load,
    usd_to_nano,
)
from proxy.budgets.scripts import INIT, RESERVE, SETTLE
from proxy.gateway.errors import ProxyError

logger = logging.getLogger(__name__)

BILLABLE_ROUTES = frozenset({"messages", "batches_create"})
RATED_ROUTES = frozenset({"messages", "count_tokens", "batches_create"})
RULES_MAX_AGE = 30.0  # seconds a tenant's rules are trusted without a generation check
DEGRADED_RULES_MAX_AGE = 5.0  # the same while Redis is unreachable (no generation to check)
REDIS_TIMEOUT = 0.5
COUNTER_GRACE = 35 * 86400  # counters outlive their period by this many seconds


@dataclass
class Counter:
    key: str
    kind: str  # "budget" or "plan"
    window: PeriodWindow
    limit: int
    amount: int
    block: bool
    rule: BudgetRule | None = None
    epoch: str = ""


@dataclass
class Window:
    key: str
    kind: str  # "rpm", "itpm" or "otpm"
    limit: int
    amount: int
    ttl: int


@dataclass
class Reservation:
    """What one exchange holds in Redis until it is settled (exactly once)."""

    enforcer: "BudgetEnforcer"
    schema: str
    counters: list[Counter] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    worst_case_usd: Decimal = Decimal(0)
    refused: Counter | None = None
    refused_spent_nano: int = 0
    degraded: bool = False  # Redis was unreachable: nothing is held
    settled: bool = False


def budget_counter_key(schema: str, budget_id: int, window: PeriodWindow) -> str:
    return f"ts:bud:{schema}:{budget_id}:{window.key}"


def plan_counter_key(schema: str, window: PeriodWindow) -> str:
    return f"ts:plan:{schema}:{window.key}"


def _usd(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')) if value >= 1 else value.normalize():f}"


class BudgetEnforcer:
    def __init__(self, url: str | None = None) -> None:
        url = url or getattr(settings, "BUDGET_REDIS_URL", "") or settings.REDIS_URL
        timeout = REDIS_TIMEOUT
        self.redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self.sync_redis = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._reserve = self.redis.register_script(RESERVE)
        self._init = self.redis.register_script(INIT)
        self._settle = self.sync_redis.register_script(SETTLE)
        self._rules: dict[str, tuple[TenantRules, float]] = {}
        self._stale: set[str] = set()
        self._lock = threading.Lock()
        self._alerted: set[tuple[str, int, int, int]] = set()

    async def close(self) -> None:
        await self.redis.aclose()
        self.sync_redis.close()

    # ---- rules -----------------------------------------------------------------------------

    async def _generation(self, schema: str) -> str:
        value: Any = await self.redis.get(generation_key(schema))
        return value.decode() if value else "0"

    async def rules(self, schema: str, *, check: bool) -> tuple[TenantRules, bool]:
        """The tenant's rules and whether they were checked against Redis just now."""
        cached = self._rules.get(schema)
        if cached and not check and time.monotonic() - cached[1] < RULES_MAX_AGE:
            return cached[0], False
        try:
            generation = await self._generation(schema)
        except (RedisError, OSError):
            generation = "?"  # Redis down: read the database, and never match a counter
            if cached and time.monotonic() - cached[1] < DEGRADED_RULES_MAX_AGE:
                return cached[0], True
        if cached and cached[0].generation == generation:
            self._rules[schema] = (cached[0], time.monotonic())
            return cached[0], True
        loaded = await sync_to_async(tenant_rules_load, thread_sensitive=False)(schema, generation)
        if len(self._rules) > 10_000:
            self._rules.clear()
        self._rules[schema] = (loaded, time.monotonic())
        return loaded, True

    # ---- reserve ---------------------------------------------------------------------------

    def _plan(self, rules: TenantRules, ex: Any, key: Any, now: datetime) -> Reservation:
        res = Reservation(enforcer=self, schema=rules.schema)
        route = ex.route.name
        body = ex.body or {}
        billable = route in BILLABLE_ROUTES
        worst, tokens_in, tokens_out = (
            request_worst_case(route, body, ex.body_bytes, at=now) if body else (Decimal(0), 0, 0)
        )
        res.worst_case_usd = worst if billable else Decimal(0)
        if billable:
            amount = usd_to_nano(worst)
            for rule in rules.applicable(key):
                window = period_window(rule.period, now, rules.time_zone, rules.week_starts_on)
                res.counters.append(
                    Counter(
                        key=budget_counter_key(rules.schema, rule.id, window),
                        kind="budget",
                        window=window,
                        limit=rule.amount_nano,
                        amount=amount,
                        block=rule.block,
                        rule=rule,
                    )
                )
            if rules.monthly_request_limit is not None:
                window = period_window("month", now, rules.time_zone, rules.week_starts_on)
                res.counters.append(
                    Counter(
                        key=plan_counter_key(rules.schema, window),
                        kind="plan",
                        window=window,
                        limit=rules.monthly_request_limit,
                        amount=1,
                        block=True,
                    )
                )
        minute, _ = minute_window(now)
        if route != "messages":
            tokens_out = 0
        if route == "batches_create":
            tokens_in = 0
        for scope, limits in (
            (f"k:{key.id}", (key.rpm_limit, key.input_tpm_limit, key.output_tpm_limit)),
            ("t", (rules.rpm_limit, rules.input_tpm_limit, rules.output_tpm_limit)),
        ):
            for kind, limit, amount in zip(
                ("rpm", "itpm", "otpm"), limits, (1, tokens_in, tokens_out), strict=True
            ):
                if limit:
                    res.windows.append(
                        Window(
                            f"ts:rl:{rules.schema}:{scope}:{kind}:{minute}",
                            kind,
                            limit,
                            amount,
                            120,
                        )
                    )
        return res

    async def reserve(self, ex: Any, key: Any) -> Reservation | None:
        """Reserve for one exchange before it is forwarded; raises ProxyError to refuse."""
        if ex.route.name not in RATED_ROUTES:
            return None
        schema = key.tenant.schema_name
        # The record's own timestamp: a rebuild attributes it to the same period.
        now = getattr(ex, "created_at", None) or timezone.now()
        checked = False
        try:
            await self._forget_stale()
            for _ in range(8):
                rules, checked_now = await self.rules(schema, check=checked)
                checked = checked or checked_now
                res = self._plan(rules, ex, key, now)
                if not res.counters and not res.windows:
                    if checked:
                        return None
                    checked = True
                    continue
                try:
                    outcome = await self._reserve_once(rules, res)
                except ProxyError:
                    ex.reservation = res  # the refusal is recorded; its alert goes out once
                    raise
                if outcome == "stale":
                    checked = True
                    continue
                if outcome == "rebuilt":
                    continue
                ex.reservation = res
                return res
        except (RedisError, OSError, DatabaseError):
            # Redis unreachable, or PostgreSQL too slow to rebuild a counter.
            ex.reservation = await self._degraded(ex, key, schema, now)
            return ex.reservation
        except ProxyError:
            raise
        except Exception as exc:
            logger.exception("budget check failed for tenant %s", schema)
            raise ProxyError(
                503, "api_error", "TokenScope could not check budgets; retry shortly.", retry=True
            ) from exc
        raise ProxyError(503, "overloaded_error", "Budget counters are busy; retry.", retry=True)

    async def _reserve_once(self, rules: TenantRules, res: Reservation) -> str:
        keys = [generation_key(rules.schema)]
        args: list[Any] = [rules.generation, len(res.counters), len(res.windows)]
        for counter in res.counters:
            keys.append(counter.key)
            args += [counter.limit, counter.amount, "1" if counter.block else "0"]
        for window in res.windows:
            keys.append(window.key)
            args += [window.limit, window.amount, window.ttl]
        result = await self._reserve(keys=keys, args=args)
        status = int(result[0])
        if status == 1:
            for counter, epoch in zip(res.counters, result[1:], strict=True):
                counter.epoch = epoch.decode()
            return "ok"
        if status == -2:
            return "stale"
        if status == -1:
            # Rebuild the missing counter and any other missing one, in one pass.
            for counter in res.counters[int(result[1]) - 1 :]:
                if not await self.redis.exists(counter.key):
                    await self._rebuild(rules.schema, counter)
            return "rebuilt"
        if status == 0:
            counter = res.counters[int(result[1]) - 1]
            res.refused = counter
            res.refused_spent_nano = int(result[2])
            res.counters, res.windows = [], []
            raise self._refusal(rules, res, counter, int(result[2]) + int(result[3]))
        window = res.windows[int(result[1]) - 1]
        res.counters, res.windows = [], []
        _, retry_after = minute_window(timezone.now())
        what = {"rpm": "requests", "itpm": "input tokens", "otpm": "output tokens"}[window.kind]
        owner = "workspace" if ":t:" in window.key else "proxy key"
        raise ProxyError(
            429,
            "rate_limit_error",
            f"This {owner}'s limit of {window.limit} {what} per minute is reached; "
            f"retry in {retry_after} s.",
            headers={"retry-after": str(retry_after)},
        )

    def _refusal(
        self, rules: TenantRules, res: Reservation, counter: Counter, used: int
    ) -> ProxyError:
        reset = timezone.localtime(counter.window.end, timezone=_zone(rules.time_zone))
        if counter.kind == "plan":
            seconds = max(1, int((counter.window.end - timezone.now()).total_seconds()))
            return ProxyError(
                429,
                "rate_limit_error",
                f"The {rules.plan_name} plan's allowance of {counter.limit} requests this month "
                f"is used up; it resets at {reset.isoformat()}.",
                retry=False,
                headers={"retry-after": str(seconds)},
            )
        rule = counter.rule
        assert rule is not None
        left = max(Decimal(0), nano_to_usd(counter.limit - used))
        return ProxyError(
            402,
            "billing_error",
            f"Budget {rule.name!r} (USD {_usd(rule.amount_usd)} per {rule.period}) would be "
            f"exceeded: this request may cost up to USD {_usd(res.worst_case_usd)} and "
            f"USD {_usd(left)} is left. The budget resets at {reset.isoformat()} "
            f"({rules.time_zone}).",
            retry=False,
        )

    async def _rebuild(self, schema: str, counter: Counter) -> None:
        """Recreate a missing counter from PostgreSQL (the first writer wins)."""
        start, end = counter.window.start, counter.window.end
        if counter.kind == "plan":
            settled = await sync_to_async(plan_requests, thread_sensitive=False)(schema, start, end)
        else:
            assert counter.rule is not None
            settled = await sync_to_async(budget_spent_nano, thread_sensitive=False)(
                schema, counter.rule, start, end
            )
        expire_at = int(end.timestamp()) + COUNTER_GRACE
        await self._init(keys=[counter.key], args=[secrets.token_hex(8), settled, expire_at])

    async def _degraded(self, ex: Any, key: Any, schema: str, now: datetime) -> Reservation | None:
        """Redis is unreachable: blocking budgets fail closed, everything else passes."""
        rules, _ = await self.rules(schema, check=False)
        res = self._plan(rules, ex, key, now)
        if any(c.kind == "budget" and c.block for c in res.counters):
            logger.warning("budget counters unreachable; refusing for tenant %s", schema)
            raise ProxyError(
                503,
                "overloaded_error",
                "TokenScope cannot check this workspace's budget right now; retry shortly.",
                retry=True,
            )
        counters = [c for c in res.counters if c.kind == "budget"]
        if counters:
            logger.warning("budget counters unreachable; alert-only budgets pass for %s", schema)
        for counter in counters:
            counter.amount = 0
        with self._lock:
            self._stale.update(c.key for c in res.counters)
        res.counters, res.windows, res.degraded = counters, [], True
        return res if counters else None

    async def _forget_stale(self) -> None:
        """Counters that missed spend while Redis was unreachable are dropped and rebuilt."""
        if not self._stale:
            return
        with self._lock:
            keys, self._stale = list(self._stale), set()
        try:
            await self.redis.delete(*keys)
        except (RedisError, OSError):
            with self._lock:
                self._stale.update(keys)
            raise

    # ---- settle (record writer thread) ----------------------------------------------------

    def settle_many(self, settlements: list[tuple[Any, Decimal]]) -> None:
        """Replace reservations by exact costs, once per exchange, in one Redis round trip for
        the whole batch of records; never raises."""
        planned: list[tuple[Reservation, list[str], list[Any]]] = []
        for ex, cost_usd in settlements:
            res: Reservation | None = getattr(ex, "reservation", None)
            if res is None or res.settled:
                continue
            res.settled = True
            try:
                call = self._settle_plan(ex, res, cost_usd)
            except Exception:
                logger.exception("budget settlement failed for %s", ex.record_id)
                continue
            if call is not None:
                planned.append((res, *call))
        if not planned:
            return
        try:
            pipe = self.sync_redis.pipeline(transaction=False)
            for _res, keys, args in planned:
                self._settle(keys=keys, args=args, client=pipe)
            results = pipe.execute()
        except (RedisError, OSError):
            with self._lock:
                for res, _keys, _args in planned:
                    self._stale.update(c.key for c in res.counters)
            logger.warning("could not settle budget counters; they will be rebuilt")
            return
        for (res, _keys, _args), totals in zip(planned, results, strict=True):
            try:
                self._settle_alerts(res, totals)
            except Exception:
                logger.exception("budget alerts failed after settlement")

    def _settle_plan(
        self, ex: Any, res: Reservation, cost_usd: Decimal
    ) -> tuple[list[str], list[Any]] | None:
        """The settle script's keys and arguments for one exchange (None: nothing to settle)."""
        from proxy.budgets.alerts import budget_refusal_alert

        if res.refused is not None and res.refused.rule is not None:
            budget_refusal_alert(self, res.schema, res.refused, res.refused_spent_nano)
        if not res.counters and not res.windows:
            return None
        forwarded = ex.upstream_started is not None
        usage = ex.usage or {}
        actual_in: int = sum(
            v
            for v in (usage.get("input_tokens"), usage.get("cache_creation_input_tokens"))
            if isinstance(v, int) and v > 0
        )
        output = usage.get("output_tokens")
        actual_out: int = output if isinstance(output, int) and output > 0 else 0
        keys: list[str] = []
        args: list[Any] = [len(res.counters), len(res.windows)]
        for counter in res.counters:
            actual = usd_to_nano(cost_usd) if counter.kind == "budget" else int(forwarded)
            keys.append(counter.key)
            args += [counter.epoch, -counter.amount, actual]
        for window in res.windows:
            actual = int(
                {"rpm": int(forwarded), "itpm": actual_in, "otpm": actual_out}[window.kind]
            )
            keys.append(window.key)
            args.append(actual - window.amount)
        return keys, args

    def _settle_alerts(self, res: Reservation, totals: list[Any]) -> None:
        from proxy.budgets.alerts import budget_threshold_alerts

        for counter, total in zip(res.counters, totals, strict=True):
            if counter.kind == "budget" and int(total) >= 0:
                budget_threshold_alerts(self, res.schema, counter, int(total))

    def alert_forget(self, marker: tuple[str, int, int, int]) -> None:
        with self._lock:
            self._alerted.discard(marker)

    def alert_once_in_process(self, marker: tuple[str, int, int, int]) -> bool:
        """False if this process already handled the alert (saves a database round trip)."""
        with self._lock:
            if marker in self._alerted:
                return False
            if len(self._alerted) > 100_000:
                self._alerted.clear()
            self._alerted.add(marker)
            return True


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def settle_exchanges(settlements: list[tuple[Any, Any]]) -> None:
    """The record writer's hook: settle a batch's reservations (exchanges without one skipped)."""
    by_enforcer: dict[int, tuple[BudgetEnforcer, list[tuple[Any, Decimal]]]] = {}
    for ex, cost_usd in settlements:
        res = getattr(ex, "reservation", None)
        if res is not None:
            entry = by_enforcer.setdefault(id(res.enforcer), (res.enforcer, []))
            entry[1].append((ex, Decimal(cost_usd or 0)))
    for enforcer, items in by_enforcer.values():
        enforcer.settle_many(items)
