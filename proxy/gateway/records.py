"""Writing exactly one usage record per exchange: batched, retried, spooled, never dropped.

Records queue in memory and are written in small batches by a child process of the gateway's
(a thread of its own if that fails). When the database refuses a batch, the records are spooled
to disk (their ids are fixed already) and written later, skipping any already there, so a retry
can never duplicate one.
"""

import asyncio
import contextlib
import copy
import functools
import json
import logging
import math
import os
import time
import uuid
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    transaction,
)
from django.db.models import JSONField
from django.utils import timezone
from django_tenants.utils import schema_context, schema_exists
from psycopg import sql
from psycopg.types.json import Jsonb

from audit.classification.model import default_model
from audit.models import UsageRecord
from audit.rollups import rollup_apply
from proxy.alerts import unpriced_model_alert, upstream_key_rejected_notice
from proxy.budgets.enforcer import settle_exchanges
from proxy.gateway.classify import classify_into
from proxy.gateway.exchange import Exchange
from proxy.gateway.keys import ResolvedKey
from proxy.pricing import usage_cost
from proxy.prompts import prompt_sha256, prompt_text, storable_text
from proxy.services import proxy_key_last_used_record
from tokenscope.lib.child_process import django_process_pool
from tokenscope.lib.idle_priority import IdlePriority

logger = logging.getLogger(__name__)

USAGE_INT_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)
STALE_CLAIM_SECONDS = 300
WRITER_CATCH_UP_SECONDS = 1.0
PRICED_KINDS = frozenset({UsageRecord.Kind.MESSAGES, UsageRecord.Kind.BATCH_RESULT})
_CONCRETE = UsageRecord._meta.concrete_fields
_COPY_FIELDS = [(field.attname, isinstance(field, JSONField)) for field in _CONCRETE]


_MAX_INT = 2**31 - 1  # the record's token columns are PostgreSQL integers


def _int(value: Any) -> int:
    return min(value, _MAX_INT) if isinstance(value, int) and value > 0 else 0


def _storable(value: Any) -> Any:
    """Upstream's usage as PostgreSQL can store it (jsonb and integer columns): counts capped,
    NaN and infinities as 0, NUL and lone surrogates out of strings. Anthropic never sends such
    values; if anything did, the record must still be written rather than refused for ever."""
    if isinstance(value, dict):
        return {storable_text(str(k)): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return max(min(value, _MAX_INT), -_MAX_INT)
    if isinstance(value, float):
        return max(min(value, _MAX_INT), -_MAX_INT) if math.isfinite(value) else 0
    return value


def usage_fields(usage: dict[str, Any]) -> dict[str, Any]:
    """The record's token columns from an Anthropic usage object."""
    split = usage.get("cache_creation") or {}
    server_tools = usage.get("server_tool_use") or {}
    details = usage.get("output_tokens_details") or {}
    fields: dict[str, Any] = {name: _int(usage.get(name)) for name in USAGE_INT_FIELDS}
    fields.update(
        cache_creation_5m_input_tokens=_int(split.get("ephemeral_5m_input_tokens")),
        cache_creation_1h_input_tokens=_int(split.get("ephemeral_1h_input_tokens")),
        web_search_requests=_int(server_tools.get("web_search_requests")),
        web_fetch_requests=_int(server_tools.get("web_fetch_requests")),
        thinking_tokens=_int(details.get("thinking_tokens")),
        service_tier=str(usage.get("service_tier") or "")[:20],
        inference_geo=str(usage.get("inference_geo") or "")[:20],
        speed=str(usage.get("speed") or "")[:20],
    )
    return fields


def build_record(ex: Exchange, restricted: dict[Any, bool] | None = None) -> UsageRecord:
    """The usage record of an exchange: attribution, usage, exact cost, prompt and timings."""
    key = ex.key
    assert key is not None
    ex.usage = _storable(ex.usage)
    ex.model = storable_text(ex.model)  # the client's "model" may hold NUL or a lone surrogate
    record = UsageRecord(
        id=ex.record_id,
        created_at=ex.created_at,
        finished_at=timezone.now(),
        kind=ex.route.kind,
        endpoint=storable_text(ex.endpoint)[:80],
        model=ex.model[:100],
        is_stream=ex.is_stream,
        status_code=ex.status_code,
        error_type=ex.error_type[:40],
        stop_reason=(ex.stop_reason or "")[:40],
        usage_raw=ex.usage,
        project_id=key.project_id,
        cost_center_id=key.cost_center_id,
        proxy_key_id=key.id,
        key_owner_id=key.owner_id,
        batch_id=ex.batch_id,
        ip_address=ex.ip_address,
        user_agent=ex.user_agent[:400],
        latency_ms=ex.elapsed_ms(ex.started, ex.finished),
        upstream_ms=(
            ex.elapsed_ms(ex.upstream_started, ex.upstream_finished)
            if ex.upstream_started is not None and ex.upstream_finished is not None
            else None
        ),
        ttfb_ms=(
            ex.elapsed_ms(ex.started, ex.first_byte_sent)
            if ex.first_byte_sent is not None
            else None
        ),
        overhead_ms=ex.overhead_ms,
        upstream_request_id=ex.upstream_request_id[:80],
        client_disconnected=ex.client_disconnected,
        **usage_fields(ex.usage),
    )
    if ex.route.kind in PRICED_KINDS and ex.model:
        batch = ex.route.kind == UsageRecord.Kind.BATCH_RESULT
        cost = usage_cost(ex.model, ex.usage, at=ex.created_at, batch=batch)
        record.cost_usd = cost.total_usd
        record.cost_breakdown = cost.breakdown()
        record.price_book_version = cost.price_book_version
        record.is_priced = cost.priced
    if ex.body is not None and ex.route.kind in ("messages", "count_tokens"):
        record.prompt_sha256 = prompt_sha256(ex.body)
        if not key.tenant.privacy_mode:
            record.prompt_text = prompt_text(ex.body)
        try:
            classify_into(record, ex, {} if restricted is None else restricted)
        except Exception:
            # Classification is not essential: the record is written without it.
            logger.exception("could not classify usage record %s", ex.record_id)
    return record


def _spool_value(value: Any) -> Any:
    if isinstance(value, (Decimal, uuid.UUID)):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def spool_dir() -> Path:
    """Spooled records wait per database, so they are only ever written where they belong."""
    return Path(settings.RECORD_SPOOL_DIR) / str(connection.settings_dict["NAME"])


def spool_records(schema: str, records: list[UsageRecord]) -> Path:
    """Keep records on disk until the database takes them."""
    directory = spool_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{schema}.{uuid.uuid4().hex}.jsonl"
    fields = [field.attname for field in UsageRecord._meta.concrete_fields]
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for record in records:
            row = {name: _spool_value(getattr(record, name)) for name in fields}
            handle.write(json.dumps(row) + "\n")
    tmp.rename(path)
    return path


def spool_drain() -> int:
    """Write spooled records; safe to repeat (existing ids are skipped). Returns rows written.

    While the database is unreachable, files stay for the next drain. A row the database
    refuses for its content (not for being down) is set aside in `dead/`, for an operator, so it
    never blocks the records behind it.
    """
    directory = spool_dir()
    if not directory.exists():
        return 0
    for stale in directory.glob("*.claimed"):
        # A drainer that died mid-file left its claim: give the file back after a while.
        if time.time() - stale.stat().st_mtime > STALE_CLAIM_SECONDS:
            schema, token = stale.name.split(".")[:2]
            stale.rename(stale.with_name(f"{schema}.{token}.jsonl"))
    written = 0
    for path in sorted(directory.glob("*.jsonl")):
        # Claim the file first: several processes may drain the same spool.
        claimed = path.with_suffix(f".{os.getpid()}.claimed")
        try:
            path.rename(claimed)
        except FileNotFoundError:
            continue
        schema = path.name.split(".", 1)[0]
        try:
            rows = [json.loads(line) for line in claimed.read_text("utf-8").splitlines() if line]
            if not schema_exists(schema):
                # The tenant is gone (deleted); its records must not be resurrected.
                logger.warning(
                    "dropping %d spooled records of deleted schema %s", len(rows), schema
                )
            else:
                with schema_context(schema):
                    written += _drain_rows(schema, rows)
        except (OperationalError, InterfaceError):
            claimed.rename(path)  # the database is down: keep the file for the next drain
            raise
        except Exception:
            claimed.rename(path)
            logger.exception("spool file %s could not be drained; kept", path.name)
            continue
        claimed.unlink()
    return written


def _drain_rows(schema: str, rows: list[dict[str, Any]]) -> int:
    try:
        return _insert_new([_from_spool(row) for row in rows])
    except (OperationalError, InterfaceError):
        raise
    except (DatabaseError, ValueError, TypeError, ValidationError):
        pass
    # Some row is refused for its content: write the others one by one, set that one aside.
    written = 0
    for row in rows:
        try:
            written += _insert_new([_from_spool(row)])
        except (OperationalError, InterfaceError):
            raise
        except (DatabaseError, ValueError, TypeError, ValidationError):
            dead = spool_dir() / "dead"
            dead.mkdir(exist_ok=True)
            with (dead / f"{schema}.jsonl").open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
            logger.error(
                "spooled usage record %s refused by the database; set aside", row.get("id")
            )
    return written


def _from_spool(row: dict[str, Any]) -> UsageRecord:
    """A record from its spooled JSON, every value back to its Python type."""
    fields = {field.attname: field for field in UsageRecord._meta.concrete_fields}
    return UsageRecord(**{name: fields[name].to_python(value) for name, value in row.items()})


def _insert_new(records: list[UsageRecord]) -> int:
    """Insert the records not written yet (a spool may be drained twice) and roll them up."""
    with transaction.atomic():
        existing = set(
            UsageRecord.objects.filter(pk__in=[r.pk for r in records]).values_list("pk", flat=True)
        )
        new = [r for r in records if r.pk not in existing]
        usage_records_copy(new)
        rollup_apply(new)
    return len(new)


@dataclass(frozen=True)
class Written:
    """What the gateway needs back of a written record: its cost, and what alerts read."""

    record_id: uuid.UUID
    tenant_id: int
    cost_usd: Decimal
    model: str
    is_priced: bool
    status_code: int
    upstream_request_id: str


def records_write(exchanges: list[Exchange]) -> list[Written]:
    """Build, price, classify and insert one batch of records, grouped by tenant schema.

    Runs in the record writer's process (or, as a fallback, a thread of the gateway's). A
    batch the database refuses is spooled to disk and written later.
    """
    close_old_connections()
    written: list[Written] = []
    by_schema: dict[str, list[Exchange]] = defaultdict(list)
    for ex in exchanges:
        if ex.key is not None:
            by_schema[ex.key.tenant.schema_name].append(ex)
    for schema, group in by_schema.items():
        records = []
        restricted: dict[Any, bool] = {}  # key owner -> processing restricted, per batch
        for ex in group:
            try:
                with schema_context(schema):
                    records.append(build_record(ex, restricted))
            except Exception:
                logger.exception(
                    "could not build usage record %s; keeping it unpriced", ex.record_id
                )
                ex.usage = {}
                ex.model = ""
                records.append(build_record(ex))
        try:
            _insert(schema, records)
        except DatabaseError:
            path = spool_records(schema, records)
            logger.warning(
                "database refused %d usage records; spooled to %s", len(records), path.name
            )
        tenant_id = group[0].key.tenant.id if group[0].key else 0
        written += [
            Written(
                r.id,
                tenant_id,
                r.cost_usd,
                r.model,
                r.is_priced,
                r.status_code,
                r.upstream_request_id,
            )
            for r in records
        ]
    if any(spool_dir().glob("*.jsonl")):
        try:
            spool_drain()
        except DatabaseError:
            logger.warning("spooled usage records still wait for the database")
    return written


def records_write_in_writer(exchanges: list[Exchange]) -> list[Written]:
    """`records_write` as the writer process runs it: on one core and only when nothing else
    wants it while it keeps up, at normal priority on every core once its oldest record waited
    `WRITER_CATCH_UP_SECONDS` (tokenscope/lib/idle_priority.py; writers of several gateway
    processes are spread over the cores by their parent's pid). `finished` is the gateway's
    `perf_counter`, which is CLOCK_MONOTONIC on Linux, the same clock in every process."""
    now = time.perf_counter()
    behind = any(
        ex.finished is not None and now - ex.finished > WRITER_CATCH_UP_SECONDS for ex in exchanges
    )
    return _writer_priority().run(lambda: records_write(exchanges), behind=behind)


def records_writer_warm_up() -> None:
    """What the writer process's first batch would otherwise do first, at normal priority
    and on every core while requests wait: import the gateway's modules (unpickling an
    exchange needs them: ~1 s of CPU), load the classifier and connect to the database."""
    default_model()
    connection.ensure_connection()
    close_old_connections()


@functools.cache
def _writer_priority() -> IdlePriority:
    """One per writer process; writers of different gateway processes get different cores."""
    return IdlePriority(WRITER_CATCH_UP_SECONDS, spread=os.getppid())


def records_settle(exchanges: list[Exchange], written: list[Written]) -> None:
    """After a batch is written: exact costs replace the budget reservations (one Redis round
    trip per batch), and operators hear of what the batch revealed. In the gateway's process,
    which holds the reservations."""
    cost = {w.record_id: w.cost_usd for w in written}
    settle_exchanges([(ex, cost[ex.record_id]) for ex in exchanges if ex.record_id in cost])
    by_tenant: dict[int, list[Written]] = defaultdict(list)
    for w in written:
        by_tenant[w.tenant_id].append(w)
    for tenant_id, group in by_tenant.items():
        _alert(tenant_id, group)


def write_batch(exchanges: list[Exchange]) -> None:
    """Write and settle one batch in this process (the writer process's fallback)."""
    records_settle(exchanges, records_write(exchanges))


def _alert(tenant_id: int, written: list[Written]) -> None:
    """Operational notices for what this batch revealed (never fails the batch)."""
    try:
        # Only a model Anthropic served counts: a made-up name answered with an error must
        # not mail operators (one email per distinct name a client invents).
        served = {w.model for w in written if not w.is_priced and w.model and w.status_code < 400}
        for model in served:
            unpriced_model_alert(model, tenant_id=tenant_id)
        if any(w.status_code == 401 and w.upstream_request_id for w in written):
            upstream_key_rejected_notice(tenant_id)
    except Exception:
        logger.exception("could not send operational notices")


def usage_records_copy(records: list[UsageRecord]) -> None:
    """Insert records into the current tenant schema's table with COPY (several times cheaper
    in CPU than INSERT through the ORM). Values go as the model holds them, JSON as jsonb."""
    if not records:
        return
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(connection.schema_name, UsageRecord._meta.db_table),  # type: ignore[attr-defined]
        sql.SQL(", ").join([sql.Identifier(str(field.column)) for field in _CONCRETE]),
    )
    # The driver's own cursor, so its errors are turned into Django's here, as the ORM does.
    with (
        connection.wrap_database_errors,
        connection.cursor() as cursor,
        cursor.cursor.copy(statement) as copy,
    ):
        for record in records:
            copy.write_row(
                [
                    Jsonb(getattr(record, name)) if is_json else getattr(record, name)
                    for name, is_json in _COPY_FIELDS
                ]
            )


def _insert(schema: str, records: list[UsageRecord]) -> None:
    last_used: dict[Any, Any] = {}
    for record in records:
        last_used[record.proxy_key_id] = max(
            record.created_at, last_used.get(record.proxy_key_id, record.created_at)
        )
    with schema_context(schema), transaction.atomic():
        usage_records_copy(records)
        rollup_apply(records)  # hourly dashboard rollups, same transaction (audit/rollups.py)
        # One write per key per batch instead of one per request.
        proxy_key_last_used_record(last_used)


def _portable(batch: list[Exchange]) -> list[Exchange]:
    """The exchanges as the writer process gets them: no Anthropic key, no live reservation.

    Exchanges of one key share one copy of it, which is then pickled once per batch."""
    keys: dict[int, ResolvedKey] = {}
    portable = []
    for ex in batch:
        if ex.key is None:
            continue
        key = keys.get(id(ex.key))
        if key is None:
            key = keys[id(ex.key)] = replace(ex.key, anthropic_key=None)
        copied = copy.copy(ex)
        copied.key, copied.reservation, copied.body_bytes = key, None, b""
        portable.append(copied)
    return portable


class RecordWriter:
    """Queues exchanges and has them written every RECORD_FLUSH_INTERVAL_MS.

    The writing (pricing, classification, COPY, rollups) happens in a child process of its own,
    so its CPU never competes for the interpreter lock with the event loop relaying requests,
    and, while it keeps up, on one core and only when no other process wants it
    (`records_write_in_writer`, docs/performance.md). Prompts reach it through the pool's
    pipe, in memory, as they would a thread. If the child fails, the batch is written in a
    thread here instead and a new child is started for the next one; ids are fixed, so a batch
    the child did write is not written twice.
    """

    def __init__(self) -> None:
        self._pending: list[Exchange] = []
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Start the writer process now rather than at the first batch (Django takes ~2 s)."""
        if self._pool is None:
            self._pool = django_process_pool()
            self._pool.submit(records_writer_warm_up)  # the first batch then finds it ready

    async def _write(self, batch: list[Exchange]) -> None:
        self.start()
        assert self._pool is not None
        try:
            payload = _portable(batch)
            loop = asyncio.get_running_loop()
            written = await loop.run_in_executor(self._pool, records_write_in_writer, payload)
        except Exception:
            logger.exception("record writer process failed; writing %d records here", len(batch))
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            await sync_to_async(write_batch, thread_sensitive=False)(batch)
            return
        await sync_to_async(records_settle, thread_sensitive=False)(batch, written)

    def submit(self, ex: Exchange) -> None:
        self._pending.append(ex)
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._idle = asyncio.Event()
            self._task = asyncio.create_task(self._run())
        if len(self._pending) >= 500 and self._wake is not None:
            self._wake.set()

    async def _run(self) -> None:
        assert self._wake is not None
        assert self._idle is not None
        interval = settings.RECORD_FLUSH_INTERVAL_MS / 1000
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=interval)
            self._wake.clear()
            batch, self._pending = self._pending, []
            if batch:
                self._idle.clear()
                try:
                    await self._write(batch)
                except Exception:
                    logger.exception("usage record writer failed; spooling %d records", len(batch))
                    await sync_to_async(_spool_all, thread_sensitive=False)(batch)
            if not self._pending:
                self._idle.set()

    async def flush(self) -> None:
        """Write everything queued so far (used at shutdown and by tests)."""
        if self._task is None or self._wake is None or self._idle is None:
            return
        while self._pending or not self._idle.is_set():
            self._wake.set()
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
        if self._pool is not None:
            await asyncio.to_thread(self._pool.shutdown)
            self._pool = None


def _spool_all(exchanges: list[Exchange]) -> None:
    by_schema: dict[str, list[UsageRecord]] = defaultdict(list)
    for ex in exchanges:
        if ex.key is not None:
            with schema_context(ex.key.tenant.schema_name):
                by_schema[ex.key.tenant.schema_name].append(build_record(ex))
            settle_exchanges([(ex, by_schema[ex.key.tenant.schema_name][-1].cost_usd)])
    for schema, records in by_schema.items():
        spool_records(schema, records)
