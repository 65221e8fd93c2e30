"""Reserve before forwarding, settle after: budgets, the plan allowance and rate limits.

One Lua call (`scripts.RESERVE`) checks and reserves every applicable counter at once, all or
nothing. The same call leases this process a little more of each counter (never more than
1/LEASE_SHARE of what is left): the next requests are reserved from that credit here, without
waiting for Redis, and a background call tops it up. Credit is held in Redis like any
reservation, so no process can overspend; what is unused goes back after LEASE_SECONDS.
The record writer settles each exchange exactly once with its exact cost
(`BudgetEnforcer.settle`), which releases the unused part of the reservation. Counters missing
from Redis are rebuilt from usage records in PostgreSQL. With Redis unreachable, a request
under a blocking budget is refused (503, fail closed); otherwise it passes and the counters it
touched are rebuilt once Redis answers again.
"""

import asyncio
import logging
import secrets
import threading
import time
from collections.abc import Callable
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
LEASE_REQUESTS = 64  # a lease asks for this many more requests' worth of each counter...
LEASE_SHARE = 16  # ...but gets at most 1/16 of what the counter has left (Lua RESERVE)
LEASE_REFILL_BELOW = 16  # topped up in the background when fewer requests' worth remain
LEASE_SECONDS = 1.0  # credit not topped up for this long goes back to Redis


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
class _CounterSettlement:
    """One counter's share of a batch's settlement: what its exchanges give back and spend."""

    counter: Counter
    schema: str
    reserved: int = 0
    spent: int = 0


@dataclass
class Credit:
    """Reserved in Redis for this process and not yet given to an exchange (a lease)."""

    epoch: str  # the counter's epoch; "" for a rate-limit window
    left: int
    granted_at: float
    expires: float


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

    def amounts(self) -> list[tuple[str, int]]:
        """(Redis key, amount) of every counter, then every window."""
        counters = [(c.key, c.amount) for c in self.counters]
        return counters + [(w.key, w.amount) for w in self.windows]


def budget_counter_key(schema: str, budget_id: int, window: PeriodWindow) -> str:
    return f"ts:bud:{schema}:{budget_id}:{window.key}"


def plan_counter_key(schema: str, window: PeriodWindow) -> str:
    return f"ts:plan:{schema}:{window.key}"


def _usd(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')) if value >= 1 else value.normalize():f}"


class BudgetEnforcer:
    def __init__(
        self, url: str | None = None, *, changed_at: Callable[[str], float] | None = None
    ) -> None:
        """`changed_at(tenant short id)`: when this process last heard the tenant's settings
        changed (the gateway's key resolver listens); credit granted before that is not used."""
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
        self._release = self.redis.register_script(SETTLE)
        self._changed_at = changed_at
        self._credits: dict[str, Credit] = {}
        self._refilling: set[tuple[str, ...]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._keeper: asyncio.Task[None] | None = None
        self._windows: dict[tuple[str, str, str], PeriodWindow] = {}
        self._rebuilding: dict[str, asyncio.Task[None]] = {}
        self._rules: dict[str, tuple[TenantRules, float]] = {}
        self._stale: set[str] = set()
        self._lock = threading.Lock()
        self._alerted: set[tuple[str, int, int, int]] = set()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        try:
            await self._credits_release(every=True)
        except (RedisError, OSError):
            logger.warning("could not give back budget leases; their counters will be rebuilt")
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
                window = self._period(rule.period, now, rules)
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
                window = self._period("month", now, rules)
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

    def _period(self, period: str, now: datetime, rules: TenantRules) -> PeriodWindow:
        """The calendar period containing `now`, computed once per period and time zone."""
        cache_key = (period, rules.time_zone, rules.week_starts_on)
        window = self._windows.get(cache_key)
        if window is None or not window.start <= now < window.end:
            if len(self._windows) > 10_000:
                self._windows.clear()
            window = period_window(period, now, rules.time_zone, rules.week_starts_on)
            self._windows[cache_key] = window
        return window

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
                if self._credit_take(res, key.tenant.short_id):
                    ex.reservation = res
                    self._credit_top_up(rules, res)
                    return res
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

    async def _reserve_once(
        self, rules: TenantRules, res: Reservation, *, lease_only: bool = False
    ) -> str:
        """Reserve for `res` in Redis and take the lease that comes with it (lease-only: just
        the lease, for the exchanges after it)."""
        keys = [generation_key(rules.schema)]
        args: list[Any] = [
            rules.generation,
            len(res.counters),
            len(res.windows),
            "1" if lease_only else "0",
            LEASE_SHARE,
        ]
        for counter in res.counters:
            keys.append(counter.key)
            amount = 0 if lease_only else counter.amount
            block = "1" if counter.block else "0"
            args += [counter.limit, amount, block, counter.amount, counter.amount * LEASE_REQUESTS]
        for window in res.windows:
            keys.append(window.key)
            amount = 0 if lease_only else window.amount
            lease = window.amount * LEASE_REQUESTS
            args += [window.limit, amount, window.ttl, window.amount, lease]
        sent = time.monotonic()
        result = await self._reserve(keys=keys, args=args)
        status = int(result[0])
        if status == 1:
            granted = time.monotonic()
            for i, counter in enumerate(res.counters):
                epoch = result[1 + 2 * i].decode()
                if not lease_only:
                    counter.epoch = epoch
                lease = int(result[2 + 2 * i])
                self._credit_add(counter.key, epoch, lease, counter.amount, granted)
            for j, window in enumerate(res.windows):
                lease = int(result[1 + 2 * len(res.counters) + j])
                self._credit_add(window.key, "", lease, window.amount, granted)
            return "ok"
        if status == -2:
            self._credits_expire(rules.schema)  # granted under rules that changed since
            return "stale"
        if status == -1:
            # Rebuild the missing counter and any other missing one, in one pass.
            for counter in res.counters[int(result[1]) - 1 :]:
                if not await self.redis.exists(counter.key):
                    # Credit granted before this call was sent was held in the counter that is
                    # gone; credit granted since may come from the counter rebuilt meanwhile.
                    credit = self._credits.get(counter.key)
                    if credit is not None and credit.granted_at < sent:
                        del self._credits[counter.key]
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

    # ---- leases ----------------------------------------------------------------------------

    def _credit_take(self, res: Reservation, short_id: str) -> bool:
        """Reserve `res` from this process's credit, all or nothing, without a Redis call."""
        now = time.monotonic()
        changed = self._changed_at(short_id) if self._changed_at else float("-inf")
        needed = res.amounts()
        credits = []
        for key, amount in needed:
            credit = self._credits.get(key)
            if (
                credit is None
                or credit.left < amount
                or credit.expires <= now
                or credit.granted_at <= changed
            ):
                return False
            credits.append(credit)
        for credit, (_key, amount) in zip(credits, needed, strict=True):
            credit.left -= amount
        for counter, credit in zip(res.counters, credits, strict=False):
            counter.epoch = credit.epoch
        return True

    def _credit_add(self, key: str, epoch: str, lease: int, unit: int, granted: float) -> None:
        credit = self._credits.get(key)
        if credit is not None and credit.epoch != epoch:
            del self._credits[key]  # held in a counter rebuilt since: nothing to give back
            credit = None
        if lease <= 0 and unit > 0:
            return
        if credit is None:
            credit = self._credits[key] = Credit(epoch, 0, granted, 0.0)
        credit.left += lease
        credit.granted_at = granted
        credit.expires = granted + LEASE_SECONDS
        if self._keeper is None or self._keeper.done():
            self._keeper = self._spawn(self._credits_keep())

    def _credit_top_up(self, rules: TenantRules, res: Reservation) -> None:
        """Lease more in the background once the credit runs low (one call per key set)."""
        amounts = res.amounts()
        if all(self._credits[key].left >= amount * LEASE_REFILL_BELOW for key, amount in amounts):
            return
        marker = tuple(key for key, _ in amounts)
        if marker in self._refilling:
            return
        self._refilling.add(marker)

        async def top_up() -> None:
            try:
                await self._reserve_once(rules, res, lease_only=True)
            except (RedisError, OSError) as exc:
                logger.warning("could not lease budget counters: %s", type(exc).__name__)
            finally:
                self._refilling.discard(marker)

        self._spawn(top_up())

    def _credits_expire(self, schema: str) -> None:
        """Give back (at the next release) what was leased of the tenant's counters."""
        for key, credit in self._credits.items():
            if key.split(":", 3)[2] == schema:
                credit.expires = 0.0

    async def _credits_keep(self) -> None:
        while self._credits:
            await asyncio.sleep(LEASE_SECONDS / 2)
            try:
                await self._credits_release(every=False)
            except (RedisError, OSError):
                logger.warning("could not give back budget leases; their counters will be rebuilt")

    async def _credits_release(self, *, every: bool) -> None:
        """Give expired credit (or all of it) back to Redis. If Redis cannot take it, the
        counters are rebuilt from PostgreSQL, as after any lost reservation."""
        now = time.monotonic()
        due = [(k, c) for k, c in self._credits.items() if every or c.expires <= now]
        for key, _credit in due:
            del self._credits[key]
        owed = [(key, credit) for key, credit in due if credit.left > 0]
        if not owed:
            return
        try:
            pipe = self.redis.pipeline(transaction=False)
            for key, credit in owed:
                if credit.epoch:
                    args: list[Any] = [1, 0, credit.epoch, -credit.left, 0]
                else:
                    args = [0, 1, -credit.left]
                await self._release(keys=[key], args=args, client=pipe)
            await pipe.execute()
        except (RedisError, OSError):
            with self._lock:
                self._stale.update(key for key, credit in owed if credit.epoch)
            raise

    def _spawn(self, coroutine: Any) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

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
        """Recreate a missing counter from PostgreSQL, once per process however many requests
        find it missing at the same time (after a Redis restart, every one of them would)."""
        pending = self._rebuilding.get(counter.key)
        if pending is None:
            pending = self._spawn(self._rebuild_from_database(schema, counter))
            self._rebuilding[counter.key] = pending
            pending.add_done_callback(lambda _task: self._rebuilding.pop(counter.key, None))
        await asyncio.shield(pending)

    async def _rebuild_from_database(self, schema: str, counter: Counter) -> None:
        """The first writer wins (INIT does nothing if another process created it)."""
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
        for key in keys:
            self._credits.pop(key, None)
        try:
            await self.redis.delete(*keys)
        except (RedisError, OSError):
            with self._lock:
                self._stale.update(keys)
            raise

    # ---- settle (record writer thread) ----------------------------------------------------

    def settle_many(self, settlements: list[tuple[Any, Decimal]]) -> None:
        """Replace reservations by exact costs, once per exchange, in one script call for the
        whole batch of records: what each exchange gives back and spends is summed per counter
        and window first (a batch of 150 records made 150 calls, 3-50 ms of Redis and Python
        in the writer thread, docs/performance.md). Never raises."""
        counters: dict[tuple[str, str], _CounterSettlement] = {}  # by (counter key, epoch)
        windows: dict[str, int] = {}  # window key -> actual - reserved
        for ex, cost_usd in settlements:
            res: Reservation | None = getattr(ex, "reservation", None)
            if res is None or res.settled:
                continue
            res.settled = True
            try:
                self._settle_add(ex, res, cost_usd, counters, windows)
            except Exception:
                logger.exception("budget settlement failed for %s", ex.record_id)
        if not counters and not windows:
            return
        args: list[Any] = [len(counters), len(windows)]
        for (_key, epoch), sums in counters.items():
            args += [epoch, -sums.reserved, sums.spent]
        args += windows.values()
        try:
            totals = self._settle(keys=[key for key, _epoch in counters] + list(windows), args=args)
        except (RedisError, OSError):
            with self._lock:
                self._stale.update(key for key, _epoch in counters)
            logger.warning("could not settle budget counters; they will be rebuilt")
            return
        from proxy.budgets.alerts import budget_threshold_alerts

        for sums, total in zip(counters.values(), totals, strict=True):
            try:
                if sums.counter.kind == "budget" and int(total) >= 0:
                    budget_threshold_alerts(self, sums.schema, sums.counter, int(total))
            except Exception:
                logger.exception("budget alerts failed after settlement")

    def _settle_add(
        self,
        ex: Any,
        res: Reservation,
        cost_usd: Decimal,
        counters: dict[tuple[str, str], _CounterSettlement],
        windows: dict[str, int],
    ) -> None:
        """Add one exchange's settlement to the batch's sums."""
        from proxy.budgets.alerts import budget_refusal_alert

        if res.refused is not None and res.refused.rule is not None:
            budget_refusal_alert(self, res.schema, res.refused, res.refused_spent_nano)
        forwarded = ex.upstream_started is not None
        usage = ex.usage or {}
        actual_in: int = sum(
            v
            for v in (usage.get("input_tokens"), usage.get("cache_creation_input_tokens"))
            if isinstance(v, int) and v > 0
        )
        output = usage.get("output_tokens")
        actual_out: int = output if isinstance(output, int) and output > 0 else 0
        for counter in res.counters:
            spent = usd_to_nano(cost_usd) if counter.kind == "budget" else int(forwarded)
            sums = counters.setdefault(
                (counter.key, counter.epoch), _CounterSettlement(counter, res.schema)
            )
            sums.reserved += counter.amount
            sums.spent += spent
        for window in res.windows:
            actual = {"rpm": int(forwarded), "itpm": actual_in, "otpm": actual_out}[window.kind]
            windows[window.key] = windows.get(window.key, 0) + actual - window.amount

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
