"""Usage records for insight tests, written through the gateway's own insert (with rollups)."""

import hashlib
import itertools
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from audit.models import UsageRecord
from conftest import in_tenant
from proxy.gateway.records import _insert
from proxy.models import CostCenter, Project, ProxyKey
from proxy.pricing import usage_cost
from proxy.services import cost_center_create, project_create, proxy_key_create
from tenants.models import Tenant

_seq = itertools.count()


def workspace(tenant: Tenant, suffix: str = "") -> tuple[Project, CostCenter, ProxyKey]:
    """A cost center, a project and a proxy key in `tenant` (created once per name)."""
    with in_tenant(tenant):
        code = f"CC{suffix or 'MAIN'}"
        center = CostCenter.objects.filter(code=code).first() or cost_center_create(
            None, tenant=tenant, code=code, name=f"Center {code}"
        )
        name = f"Project {suffix or 'Main'}"
        project = Project.objects.filter(name=name).first() or project_create(
            None, tenant=tenant, name=name, default_cost_center=center
        )
        key = ProxyKey.objects.filter(project=project, cost_center=center).first()
        if key is None:
            key, _ = proxy_key_create(
                None, tenant=tenant, project=project, cost_center=center, name=f"key {name}"
            )
    return project, center, key


def record(
    key: ProxyKey,
    *,
    at: datetime | None = None,
    model: str = "claude-sonnet-4-5",
    usage: dict[str, Any] | None = None,
    status_code: int = 200,
    prompt: str | None = "Summarize the quarterly report",
    **fields: Any,
) -> UsageRecord:
    at = at or timezone.now() - timedelta(hours=1, seconds=next(_seq))
    usage = usage or {"input_tokens": 1000, "output_tokens": 200}
    cost = usage_cost(model, usage, at=at)
    split = usage.get("cache_creation") or {}
    values: dict[str, Any] = {
        "created_at": at,
        "kind": UsageRecord.Kind.MESSAGES,
        "endpoint": "/v1/messages",
        "model": model,
        "status_code": status_code,
        "input_tokens": usage.get("input_tokens", 0),
        "output_tokens": usage.get("output_tokens", 0),
        "cache_creation_input_tokens": usage.get("cache_creation_input_tokens", 0),
        "cache_creation_5m_input_tokens": split.get("ephemeral_5m_input_tokens", 0),
        "cache_creation_1h_input_tokens": split.get("ephemeral_1h_input_tokens", 0),
        "cache_read_input_tokens": usage.get("cache_read_input_tokens", 0),
        "usage_raw": usage,
        "cost_usd": cost.total_usd if status_code < 400 else Decimal(0),
        "cost_breakdown": cost.breakdown() if status_code < 400 else {},
        "price_book_version": cost.price_book_version,
        "project_id": key.project_id,
        "cost_center_id": key.cost_center_id,
        "proxy_key_id": key.pk,
        "key_owner_id": key.owner_id,
        "ip_address": "203.0.113.9",
        "user_agent": "pytest",
        "latency_ms": 120.0,
        "upstream_ms": 110.0,
        "ttfb_ms": 30.0,
        "overhead_ms": 1.5,
        "prompt_text": prompt,
        "prompt_sha256": hashlib.sha256((prompt or "x").encode()).hexdigest(),
        "upstream_request_id": f"req_{next(_seq)}",
    }
    values.update(fields)
    return UsageRecord(**values)


def write(tenant: Tenant, records: list[UsageRecord]) -> list[UsageRecord]:
    """Insert records exactly as the gateway does (bulk insert + rollups, one transaction)."""
    _insert(tenant.schema_name, records)
    return records
