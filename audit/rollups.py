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

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection, transaction

from audit.models import UsageClassRollup, UsageRecord, UsageRollup

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
        _upsert(UsageRollup, COST_DIMS, COST_METRICS, cost_rows)
        _upsert(UsageClassRollup, CLASS_DIMS, CLASS_METRICS, class_rows)
    return count


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


def rollup_rebuild(start: datetime, end: datetime) -> int:
    """Recompute the rollups of every hour touching [start, end) from the raw records.

    Returns the number of rollup rows written. Runs in one transaction.
    """
    start = hour_of(start)
    end = hour_of(end) + (timedelta(hours=1) if end != hour_of(end) else timedelta(0))
    written = 0
    with transaction.atomic():
        _lock(exclusive=True)
        UsageRollup.objects.filter(hour__gte=start, hour__lt=end).delete()
        UsageClassRollup.objects.filter(hour__gte=start, hour__lt=end).delete()
        with connection.cursor() as cursor:
            cursor.execute(REBUILD_COST_SQL, [start, end])
            written += cursor.rowcount
            cursor.execute(REBUILD_CLASS_SQL, [start, end])
            written += cursor.rowcount
    return written
