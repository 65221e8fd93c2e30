"""Message batches made through the proxy: ownership, and metering each result when one ends.

Each result becomes its own usage record at batch prices, attributed to the key that created
the batch. Record ids derive from (batch id, custom id), so metering twice never duplicates.
"""

import logging
import uuid
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit.models import UsageRecord
from proxy.batch_models import ProxyBatch
from proxy.custody import anthropic_key_plaintext
from proxy.gateway.records import usage_fields
from proxy.pricing import usage_cost
from proxy.selectors import anthropic_credential_for
from proxy.upstream import UpstreamHTTPError, batch_results, batch_retrieve
from tenants.models import Tenant

logger = logging.getLogger(__name__)

RESULT_ID_NAMESPACE = uuid.UUID("6f1c7f4e-2b7a-4c55-9a43-5d0e8f1b2a90")
RESULT_STATUS = {"succeeded": 200, "errored": 500, "canceled": 499, "expired": 408}
INSERT_CHUNK = 1000


def batch_register(
    batch_id: str,
    *,
    proxy_key_id: Any,
    project_id: int,
    cost_center_id: int,
    key_owner_id: int | None,
    request_count: int,
    created_at: datetime,
) -> None:
    """Remember that this tenant made the batch (runs in the tenant's schema)."""
    ProxyBatch.objects.get_or_create(
        id=batch_id,
        defaults={
            "proxy_key_id": proxy_key_id,
            "project_id": project_id,
            "cost_center_id": cost_center_id,
            "key_owner_id": key_owner_id,
            "request_count": request_count,
            "created_at": created_at,
        },
    )


def batch_is_owned(batch_id: str) -> bool:
    return ProxyBatch.objects.filter(pk=batch_id).exists()


def _result_record(batch: ProxyBatch, result: dict[str, Any], ended_at: datetime) -> UsageRecord:
    custom_id = str(result.get("custom_id", ""))[:80]
    outcome = result.get("result") or {}
    kind = str(outcome.get("type", ""))
    message = outcome.get("message") or {}
    usage = message.get("usage") or {}
    model = str(message.get("model") or "")
    record = UsageRecord(
        id=uuid.uuid5(RESULT_ID_NAMESPACE, f"{batch.id}/{custom_id}"),
        created_at=ended_at,
        finished_at=ended_at,
        kind=UsageRecord.Kind.BATCH_RESULT,
        endpoint="batch result",
        model=model[:100],
        status_code=RESULT_STATUS.get(kind, 500),
        error_type="" if kind == "succeeded" else kind,
        stop_reason=str(message.get("stop_reason") or "")[:40],
        usage_raw=usage,
        project_id=batch.project_id,
        cost_center_id=batch.cost_center_id,
        proxy_key_id=batch.proxy_key_id,
        key_owner_id=batch.key_owner_id,
        batch_id=batch.id,
        custom_id=custom_id,
        **usage_fields(usage),
    )
    if model and usage:
        cost = usage_cost(model, usage, at=ended_at, batch=True)
        record.cost_usd = cost.total_usd
        record.cost_breakdown = cost.breakdown()
        record.price_book_version = cost.price_book_version
        record.is_priced = cost.priced
    return record


def batch_meter(batch: ProxyBatch, *, tenant: Tenant) -> int:
    """Meter an ended batch's results once; returns the records written (0 if not ended)."""
    credential = anthropic_credential_for(batch.project_id)
    if credential is None:
        return 0
    key = anthropic_key_plaintext(credential, tenant=tenant)
    upstream = batch_retrieve(key, batch.id)
    if upstream.get("processing_status") != "ended":
        return 0
    ended_at = parse_datetime(str(upstream.get("ended_at") or "")) or timezone.now()
    written = 0
    chunk: list[UsageRecord] = []
    for result in batch_results(key, batch.id):
        chunk.append(_result_record(batch, result, ended_at))
        if len(chunk) >= INSERT_CHUNK:
            written += len(UsageRecord.objects.bulk_create(chunk, ignore_conflicts=True))
            chunk = []
    with transaction.atomic():
        if chunk:
            written += len(UsageRecord.objects.bulk_create(chunk, ignore_conflicts=True))
        ProxyBatch.objects.filter(pk=batch.pk, metered_at__isnull=True).update(
            metered_at=timezone.now(), ended_at=ended_at, result_count=written
        )
    logger.info("metered batch %s: %d results", batch.id, written)
    return written


def batches_meter_pending(*, tenant: Tenant) -> int:
    """Meter every batch of the current tenant schema that has ended and is not yet metered."""
    total = 0
    for batch in ProxyBatch.objects.filter(metered_at__isnull=True).order_by("created_at"):
        try:
            total += batch_meter(batch, tenant=tenant)
        except UpstreamHTTPError as exc:
            logger.warning("batch %s could not be checked: %s", batch.id, type(exc).__name__)
    return total
