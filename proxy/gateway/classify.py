"""Classification of each Messages request in the record writer, in memory only.

Both modes classify here, before the record is written: with Privacy Mode on, the prompt text
exists only in the gateway's and its writer process's memory (passed through a pipe) until the
record (holding its hash) is built, so it never reaches Redis, a Celery message, a log or the
disk. A tenant's taxonomy and settings are read
once a minute per process.
"""

import time
from dataclasses import dataclass
from typing import Any

from audit.classification import classify, prompt_text_for_classification
from audit.classification.selectors import (
    classification_settings,
    relevance_flagged,
    tenant_taxonomy,
)
from audit.models import UsageRecord
from privacy.selectors import processing_restricted
from proxy.gateway.exchange import Exchange

CACHE_SECONDS = 60.0


@dataclass
class _TenantSetup:
    taxonomy: Any
    settings: Any
    loaded_at: float


_setups: dict[str, _TenantSetup] = {}


def _setup(schema: str) -> _TenantSetup:
    """The tenant's taxonomy and settings (call inside the tenant's schema)."""
    cached = _setups.get(schema)
    if cached is None or time.monotonic() - cached.loaded_at > CACHE_SECONDS:
        cached = _TenantSetup(tenant_taxonomy(), classification_settings(), time.monotonic())
        _setups[schema] = cached
    return cached


def classify_into(record: UsageRecord, ex: Exchange, restricted: dict[Any, bool]) -> None:
    """Set category, relevance, sensitivity, detectors and the review flag on a messages record.

    Skipped for requests of a key owner who restricted processing (GDPR Art. 18/21).
    """
    key = ex.key
    if key is None or ex.body is None or ex.route.kind != UsageRecord.Kind.MESSAGES:
        return
    if key.owner_id not in restricted:
        tenant = _TenantRef(key.tenant.id)
        restricted[key.owner_id] = processing_restricted(tenant, key.owner_id)  # type: ignore[arg-type]
    if restricted[key.owner_id]:
        return
    setup = _setup(key.tenant.schema_name)
    result = classify(
        prompt_text_for_classification(ex.body),
        project_purpose=key.project_purpose,
        taxonomy=setup.taxonomy,
    )
    record.category = result.category
    record.relevance_score = result.relevance
    record.sensitivity = result.sensitivity
    record.detectors = list(result.detectors)
    record.flagged_for_review = relevance_flagged(result.relevance, setup.settings)


@dataclass(frozen=True)
class _TenantRef:
    """What `processing_restricted` reads of a tenant: its primary key."""

    pk: int
