"""Incremental hourly rollups of usage records (see audit/models/rollups.py and docs/insight.md).

`rollup_apply(records, sign=+1)` adds a batch of records to both cubes with one
INSERT … ON CONFLICT DO UPDATE per cube; `sign=-1` subtracts them. Repricing (or any change of
a rolled-up field: cost, classification) is `rollup_apply(old, sign=-1)` then
`rollup_apply(new, sign=+1)` in the transaction that changes the rows. Late records simply
land in their own (older) hour. `rollup_rebuild(start, end)` recomputes whole hours from the
raw records (for records written outside the gateway, e.g. the disk spool, or after a restore).

A writer holds a shared advisory lock on the schema's rollups for its transaction and a rebuild
an exclusive one, so a rebuild never misses or double-counts a concurrent batch.
"""

import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection, models, transaction

from audit.models import (
    UsageCacheWaste,
    UsageClassDailyRollup,
    UsageClassRollup,
    UsageDailyRollup,
    UsageRecord,
    UsageRollup,
)

COST_DIMS = (
    "hour",
    "model",
    "project_id",
    "cost_center_id",
    "proxy_key_id",
    "key_owner_id",
    "status_code",
)
COST_INT_METRICS = (
    "requests",
    "unpriced_requests",
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_creation_5m_input_tokens",
    "cache_creation_1h_input_tokens",
    "cache_read_input_tokens",
    "web_search_requests",
)
COST_DEC_METRICS = ("cost_usd", "cache_read_usd", "cache_write_5m_usd", "cache_write_1h_usd")
COST_METRICS = (*COST_INT_METRICS, *COST_DEC_METRICS, "latency_ms_sum")
CLASS_DIMS = ("hour", "project_id", "cost_center_id", "dim", "value")
CLASS_METRICS = ("requests", "cost_usd")
DAILY_DIMS = ("day", "tz", *COST_DIMS[1:])
CLASS_DAILY_DIMS = ("day", "tz", *CLASS_DIMS[1:])
ZERO = Decimal(0)


def hour_of(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def relevance_bucket(score: float | None) -> str:
    """Decile "0".."9" of a relevance score in [0, 1]; "none" when unscored."""
    if score is None:
        return "none"
    return str(min(9, max(0, int(score * 10))))


def _dec(breakdown: Any, name: str) -> Decimal:
    value = breakdown.get(name) if isinstance(breakdown, dict) else None
    try:
        return Decimal(value) if value else ZERO
    except (ArithmeticError, ValueError, TypeError):
        return ZERO


def _lock(*, exclusive: bool) -> None:
    fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {fn}(hashtext('usage-rollup:' || current_schema()))")


def _upsert(model: type[Any], dims: tuple[str, ...], metrics: tuple[str, ...], rows: list) -> None:
    if not rows:
        return
    table = connection.ops.quote_name(model._meta.db_table)
    constraint = model._meta.constraints[0].name
    columns = ", ".join((*dims, *metrics))
    placeholders = "(" + ", ".join(["%s"] * (len(dims) + len(metrics))) + ")"
    updates = ", ".join(f"{m} = r.{m} + EXCLUDED.{m}" for m in metrics)
    sql = (
        f"INSERT INTO {table} AS r ({columns}) VALUES "  # noqa: S608 - names from model metadata
        + ", ".join([placeholders] * len(rows))
        + f" ON CONFLICT ON CONSTRAINT {constraint} DO UPDATE SET {updates}"
    )
    params = [value for row in rows for value in row]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _sort_key(item: tuple[tuple[Any, ...], Any]) -> tuple[str, ...]:
    return tuple("" if v is None else str(v) for v in item[0])


def rollup_apply(records: Iterable[UsageRecord], *, sign: int = 1) -> int:
    """Add (`sign=+1`) or subtract (`sign=-1`) records' figures to the hourly rollups.

    Call it inside the transaction that writes the records. Returns the records applied.
    """
    assert sign in (1, -1)
    cost: dict[tuple[Any, ...], list[Any]] = {}
    klass: dict[tuple[Any, ...], list[Any]] = {}
    count = 0
    for r in records:
        count += 1
        hour = hour_of(r.created_at)
        bd = r.cost_breakdown
        key = (
            hour,
            r.model,
            r.project_id,
            r.cost_center_id,
            r.proxy_key_id,
            r.key_owner_id,
            r.status_code,
        )
        row = cost.setdefault(key, [0] * len(COST_INT_METRICS) + [ZERO] * 4 + [0.0])
        values = (
            1,
            0 if r.is_priced else 1,
            r.input_tokens,
            r.output_tokens,
            r.cache_creation_input_tokens,
            r.cache_creation_5m_input_tokens,
            r.cache_creation_1h_input_tokens,
            r.cache_read_input_tokens,
            r.web_search_requests,
            Decimal(r.cost_usd),
            _dec(bd, "cache_read_usd"),
            _dec(bd, "cache_write_5m_usd"),
            _dec(bd, "cache_write_1h_usd"),
            float(r.latency_ms or 0),
        )
        for i, value in enumerate(values):
            row[i] += value
        for dim, value in (
            ("category", r.category or ""),
            ("sensitivity", r.sensitivity or ""),
            ("relevance", relevance_bucket(r.relevance_score)),
        ):
            crow = klass.setdefault((hour, r.project_id, r.cost_center_id, dim, value), [0, ZERO])
            crow[0] += 1
            crow[1] += Decimal(r.cost_usd)
    if not count:
        return 0
    cost_rows = [(*k, *(v * sign for v in vals)) for k, vals in sorted(cost.items(), key=_sort_key)]
    class_rows = [
        (*k, *(v * sign for v in vals)) for k, vals in sorted(klass.items(), key=_sort_key)
    ]
    with transaction.atomic():
        _lock(exclusive=False)
        tz = tenant_time_zone()
        _upsert(UsageRollup, COST_DIMS, COST_METRICS, cost_rows)
        _upsert(UsageClassRollup, CLASS_DIMS, CLASS_METRICS, class_rows)
        _upsert(UsageDailyRollup, DAILY_DIMS, COST_METRICS, _daily(cost_rows, tz))
        _upsert(UsageClassDailyRollup, CLASS_DAILY_DIMS, CLASS_METRICS, _daily(class_rows, tz))
        groups = {(k[4], k[1], k[0]) for k in cost}
        groups |= {(key, model, hour - timedelta(hours=1)) for key, model, hour in groups}
        _waste_refresh(sorted(groups, key=lambda g: (str(g[0]), g[1], g[2])))
    return count


def _daily(rows: list[tuple[Any, ...]], tz: str) -> list[tuple[Any, ...]]:
    """Hourly rows → rows keyed by the hour's local date in `tz` (summed, sorted)."""
    zone = ZoneInfo(tz)
    out: dict[tuple[Any, ...], list[Any]] = {}
    for row in rows:
        hour, *rest = row
        key = (hour.astimezone(zone).date(), tz, *rest[: -_width(rest)])
        values = rest[-_width(rest) :]
        acc = out.setdefault(key, [0 * v for v in values])
        for i, v in enumerate(values):
            acc[i] += v
    return [(*k, *v) for k, v in sorted(out.items(), key=_sort_key)]


def _width(rest: list[Any]) -> int:
    # Cost rows carry len(COST_METRICS) sums after 6 dims; class rows 2 after 4 dims.
    return len(COST_METRICS) if len(rest) == 6 + len(COST_METRICS) else len(CLASS_METRICS)


_TENANT_TZ: dict[str, tuple[str, float]] = {}


def tenant_time_zone() -> str:
    """The current schema's tenant time zone (cached in this process for a minute)."""
    schema = connection.schema_name  # type: ignore[attr-defined]
    cached = _TENANT_TZ.get(schema)
    now = time.monotonic()
    if cached is not None and cached[1] > now:
        return cached[0]
    from tenants.models import Tenant

    tz = Tenant.objects.filter(schema_name=schema).values_list("time_zone", flat=True).first()
    _TENANT_TZ[schema] = (tz or "UTC", now + 60)
    return tz or "UTC"


ZERO_KEY = "00000000-0000-0000-0000-000000000000"
WASTE_SQL = f"""
WITH g AS (
    SELECT * FROM unnest(%s::uuid[], %s::text[], %s::timestamptz[]) AS t(k, m, h)
), w AS (
    SELECT coalesce(r.proxy_key_id, '{ZERO_KEY}') AS k, r.model AS m, r.hour AS h,
           max(r.project_id) AS p, max(r.cost_center_id) AS c,
           sum(r.cache_creation_5m_input_tokens) AS w5,
           sum(r.cache_creation_1h_input_tokens) AS w1,
           sum(r.cache_write_5m_usd) AS u5, sum(r.cache_write_1h_usd) AS u1,
           sum(r.cache_read_input_tokens) AS rd
    FROM audit_usagerollup r
    WHERE (coalesce(r.proxy_key_id, '{ZERO_KEY}'), r.model, r.hour) IN (
        SELECT k, m, h FROM g UNION SELECT k, m, h + interval '1 hour' FROM g)
    GROUP BY 1, 2, 3
), est AS (
    SELECT a.k, a.m, a.h, a.p, a.c, a.w5, a.w1, a.u5, a.u1,
           greatest(0, a.w5 - a.rd) AS n5,
           greatest(0, a.w1 - greatest(0, a.rd - a.w5) - coalesce(n.rd, 0)) AS n1
    FROM w a LEFT JOIN w n ON n.k = a.k AND n.m = a.m AND n.h = a.h + interval '1 hour'
    WHERE (a.k, a.m, a.h) IN (SELECT k, m, h FROM g)
)
INSERT INTO audit_usagecachewaste (hour, proxy_key_id, model, project_id, cost_center_id,
    unread_5m_tokens, unread_1h_tokens, unread_5m_usd, unread_1h_usd)
SELECT h, NULLIF(k, '{ZERO_KEY}'), m, p, c, n5, n1,
       CASE WHEN w5 > 0 THEN u5 * n5 / w5 ELSE 0 END,
       CASE WHEN w1 > 0 THEN u1 * n1 / w1 ELSE 0 END
FROM est WHERE n5 > 0 OR n1 > 0
"""  # noqa: S608 - constant SQL
WASTE_DELETE_SQL = f"""
DELETE FROM audit_usagecachewaste x
USING unnest(%s::uuid[], %s::text[], %s::timestamptz[]) AS g(k, m, h)
WHERE coalesce(x.proxy_key_id, '{ZERO_KEY}') = g.k AND x.model = g.m AND x.hour = g.h
"""  # noqa: S608 - constant SQL


def _waste_refresh(groups: list[tuple[Any, str, datetime]]) -> None:
    """Recompute the unread-cache estimate of these (key, model, hour) groups."""
    if not groups:
        return
    params: list[Any] = [
        [str(k) if k is not None else ZERO_KEY for k, _, _ in groups],
        [m for _, m, _ in groups],
        [h for _, _, h in groups],
    ]
    with connection.cursor() as cursor:
        cursor.execute(WASTE_DELETE_SQL, params)
        cursor.execute(WASTE_SQL, params)


_DEC = "COALESCE(NULLIF(u.cost_breakdown->>'{0}', '')::numeric, 0)"
REBUILD_COST_SQL = f"""
INSERT INTO audit_usagerollup ({", ".join((*COST_DIMS, *COST_METRICS))})
SELECT date_trunc('hour', u.created_at, 'UTC'), u.model, u.project_id, u.cost_center_id,
       u.proxy_key_id, u.key_owner_id, u.status_code,
       count(*), count(*) FILTER (WHERE NOT u.is_priced),
       sum(u.input_tokens), sum(u.output_tokens), sum(u.cache_creation_input_tokens),
       sum(u.cache_creation_5m_input_tokens), sum(u.cache_creation_1h_input_tokens),
       sum(u.cache_read_input_tokens), sum(u.web_search_requests), sum(u.cost_usd),
       sum({_DEC.format("cache_read_usd")}), sum({_DEC.format("cache_write_5m_usd")}),
       sum({_DEC.format("cache_write_1h_usd")}), sum(u.latency_ms)
FROM audit_usagerecord u
WHERE u.created_at >= %s AND u.created_at < %s
GROUP BY 1, 2, 3, 4, 5, 6, 7
"""  # noqa: S608 - constant SQL
REBUILD_CLASS_SQL = f"""
INSERT INTO audit_usageclassrollup ({", ".join((*CLASS_DIMS, *CLASS_METRICS))})
SELECT date_trunc('hour', u.created_at, 'UTC'), u.project_id, u.cost_center_id, d.dim, d.value,
       count(*), sum(u.cost_usd)
FROM audit_usagerecord u
CROSS JOIN LATERAL (VALUES
    ('category', u.category),
    ('sensitivity', u.sensitivity),
    ('relevance', CASE WHEN u.relevance_score IS NULL THEN 'none'
         ELSE least(9, greatest(0, floor(u.relevance_score * 10)))::int::text END)
) AS d(dim, value)
WHERE u.created_at >= %s AND u.created_at < %s
GROUP BY 1, 2, 3, 4, 5
"""  # noqa: S608 - constant SQL


REBUILD_DAILY_SQL = f"""
INSERT INTO audit_usagedailyrollup ({", ".join((*DAILY_DIMS, *COST_METRICS))})
SELECT (hour AT TIME ZONE %s)::date, %s, {", ".join(COST_DIMS[1:])},
       {", ".join(f"sum({m})" for m in COST_METRICS)}
FROM audit_usagerollup WHERE hour >= %s AND hour < %s
GROUP BY 1, 2, {", ".join(str(i + 3) for i in range(len(COST_DIMS) - 1))}
"""  # noqa: S608 - constant SQL
REBUILD_CLASS_DAILY_SQL = f"""
INSERT INTO audit_usageclassdailyrollup ({", ".join((*CLASS_DAILY_DIMS, *CLASS_METRICS))})
SELECT (hour AT TIME ZONE %s)::date, %s, {", ".join(CLASS_DIMS[1:])},
       {", ".join(f"sum({m})" for m in CLASS_METRICS)}
FROM audit_usageclassrollup WHERE hour >= %s AND hour < %s
GROUP BY 1, 2, {", ".join(str(i + 3) for i in range(len(CLASS_DIMS) - 1))}
"""  # noqa: S608 - constant SQL
WASTE_RANGE_GROUPS_SQL = f"""
SELECT array_agg(k), array_agg(m), array_agg(h) FROM (
    SELECT DISTINCT coalesce(proxy_key_id, '{ZERO_KEY}') AS k, model AS m, hour AS h
    FROM audit_usagerollup
    WHERE hour >= %s AND hour < %s
      AND (cache_creation_5m_input_tokens > 0 OR cache_creation_1h_input_tokens > 0)
) x
"""  # noqa: S608 - constant SQL


def _daily_rebuild(tz: str, start: datetime, end: datetime) -> None:
    """Recompute the daily cubes for the local days touching [start, end) from the hourly ones."""
    zone = ZoneInfo(tz)
    first = start.astimezone(zone).date()
    last = (end - timedelta(microseconds=1)).astimezone(zone).date()
    lo = datetime.combine(first, datetime.min.time(), zone)
    hi = datetime.combine(last + timedelta(days=1), datetime.min.time(), zone)
    UsageDailyRollup.objects.filter(day__gte=first, day__lte=last).delete()
    UsageClassDailyRollup.objects.filter(day__gte=first, day__lte=last).delete()
    with connection.cursor() as cursor:
        cursor.execute(REBUILD_DAILY_SQL, [tz, tz, lo, hi])
        cursor.execute(REBUILD_CLASS_DAILY_SQL, [tz, tz, lo, hi])


def rollup_rebuild(start: datetime, end: datetime) -> int:
    """Recompute every cube for the hours touching [start, end) from the raw records.

    Returns the number of hourly rollup rows written. Runs in one transaction.
    """
    start = hour_of(start)
    end = hour_of(end) + (timedelta(hours=1) if end != hour_of(end) else timedelta(0))
    written = 0
    with transaction.atomic():
        _lock(exclusive=True)
        UsageRollup.objects.filter(hour__gte=start, hour__lt=end).delete()
        UsageClassRollup.objects.filter(hour__gte=start, hour__lt=end).delete()
        UsageCacheWaste.objects.filter(hour__gte=start - timedelta(hours=1), hour__lt=end).delete()
        with connection.cursor() as cursor:
            cursor.execute(REBUILD_COST_SQL, [start, end])
            written += cursor.rowcount
            cursor.execute(REBUILD_CLASS_SQL, [start, end])
            cursor.execute(WASTE_RANGE_GROUPS_SQL, [start - timedelta(hours=1), end])
            keys, models, hours = cursor.fetchone()
        if keys:
            _waste_refresh(list(zip(keys, models, hours, strict=True)))
        _daily_rebuild(tenant_time_zone(), start, end)
    return written


def daily_ensure(tz: str) -> bool:
    """Rebuild the daily cubes when they were built for another time zone (after a change).

    Returns True when a rebuild ran.
    """
    # Two index range scans on (tz, day) each: instant whatever the table size.
    stale = any(
        model.objects.filter(lookup).exists()
        for model in (UsageDailyRollup, UsageClassDailyRollup)
        for lookup in (models.Q(tz__lt=tz), models.Q(tz__gt=tz))
    )
    if not stale:
        return False
    with transaction.atomic():
        _lock(exclusive=True)
        UsageDailyRollup.objects.all().delete()
        UsageClassDailyRollup.objects.all().delete()
        bounds = UsageRollup.objects.aggregate(lo=models.Min("hour"), hi=models.Max("hour"))
        if bounds["lo"] is not None:
            _TENANT_TZ.pop(connection.schema_name, None)  # type: ignore[attr-defined]
            _daily_rebuild(tz, bounds["lo"], bounds["hi"] + timedelta(hours=1))
    return True
