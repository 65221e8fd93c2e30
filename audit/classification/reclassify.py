"""Re-run classification on stored usage records after a tenant changed its taxonomy.

Only records whose prompt text is stored (Privacy Mode off when they were written) can be
reclassified; records of key owners who restricted processing are left alone. Rollups are
corrected in the transaction that updates each batch: old figures out, new figures in.
"""

import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import islice
from typing import Any, TypeVar

from django.db import transaction

from audit.classification import classify
from audit.classification.selectors import (
    classification_settings,
    relevance_flagged,
    tenant_taxonomy,
)
from audit.models import UsageRecord
from audit.rollups import rollup_apply
from privacy.selectors import processing_restricted
from proxy.models import Project
from tenants.models import Tenant

LABEL_FIELDS = ("category", "relevance_score", "sensitivity", "detectors", "flagged_for_review")
# The "[system]" / "[user]" / "[assistant]" headers proxy.prompts.prompt_text puts before sections.
_ROLE_HEADER = re.compile(r"(^|\n\n)\[(?:system|user|assistant)\]\n")

T = TypeVar("T")


def classification_text(stored: str) -> str:
    """The text to classify from a stored prompt: its sections without the role headers."""
    return _ROLE_HEADER.sub(r"\1", stored)


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _copy(record: UsageRecord) -> UsageRecord:
    return UsageRecord(
        **{f.attname: getattr(record, f.attname) for f in UsageRecord._meta.concrete_fields}
    )


def usage_reclassify(
    tenant: Tenant,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    batch: int = 500,
) -> dict[str, Any]:
    """Classify again the tenant's messages records in [since, until) with today's taxonomy.

    Call inside the tenant's schema. Returns the counts: `reclassified` (records classified
    again), `changed` (of those, records whose labels changed), `skipped_privacy_mode` (no
    stored prompt text) and `skipped_restricted` (key owner restricted processing).
    """
    qs = UsageRecord.objects.filter(kind=UsageRecord.Kind.MESSAGES)
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    taxonomy = tenant_taxonomy()
    settings = classification_settings()
    purposes = dict(Project.objects.values_list("id", "purpose"))
    restricted: dict[int | None, bool] = {}
    counts = {"reclassified": 0, "changed": 0, "skipped_privacy_mode": 0, "skipped_restricted": 0}
    counts["skipped_privacy_mode"] = qs.filter(prompt_text__isnull=True).count()

    rows = (
        qs.filter(prompt_text__isnull=False)
        .order_by("created_at", "id")
        .values_list("id", "prompt_text", "project_id", "key_owner_id")
        .iterator(chunk_size=batch)
    )
    for chunk in _chunks(rows, batch):
        labels: dict[Any, dict[str, Any]] = {}
        for record_id, text, project_id, owner_id in chunk:
            if owner_id not in restricted:
                restricted[owner_id] = processing_restricted(tenant, owner_id)
            if restricted[owner_id]:
                counts["skipped_restricted"] += 1
                continue
            # Classified outside the transaction: CPU only, no locks held meanwhile.
            result = classify(
                classification_text(text or ""),
                project_purpose=purposes.get(project_id, ""),
                taxonomy=taxonomy,
            )
            labels[record_id] = {
                "category": result.category,
                "relevance_score": result.relevance,
                "sensitivity": result.sensitivity,
                "detectors": list(result.detectors),
                "flagged_for_review": relevance_flagged(result.relevance, settings),
            }
        counts["reclassified"] += len(labels)
        if labels:
            counts["changed"] += _apply(labels)
    return counts


def _apply(labels: dict[Any, dict[str, Any]]) -> int:
    """Write one batch of new labels and move the rollups with them; returns records changed."""
    with transaction.atomic():
        locked = UsageRecord.objects.select_for_update().filter(id__in=list(labels))
        old, new = [], []
        for record in locked.order_by("created_at", "id"):
            values = labels[record.pk]
            if all(getattr(record, name) == values[name] for name in LABEL_FIELDS):
                continue
            old.append(_copy(record))
            for name, value in values.items():
                setattr(record, name, value)
            new.append(record)
        if new:
            rollup_apply(old, sign=-1)
            UsageRecord.objects.bulk_update(new, list(LABEL_FIELDS), batch_size=500)
            rollup_apply(new, sign=1)
    return len(new)
