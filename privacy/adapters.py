"""Points where privacy calls code that other apps own; each can be re-pointed in one line.

- Paddle: `SUBSCRIPTION_CANCEL` names billing's `subscription_cancel(tenant, *, reason)`.
- Usage: `register_export_source(name, fn)` adds a person's rows to their data export;
  `register_usage_totals(fn)` feeds the operator analytics page (totals per plan).
- Erasure: `register_user_erase(fn)` anonymises a person's rows in your models (usage records).
- Deletion: `register_tenant_purge(fn)` runs extra clean-up when a tenant is purged, e.g. to
  scrub public rows tied to it by something other than a foreign key.
"""

import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.utils.module_loading import import_string

from tenants.models import Tenant

logger = logging.getLogger(__name__)

SUBSCRIPTION_CANCEL = "billing.services.subscription_cancel"

# name -> fn(tenant, user) -> list of JSON-able dicts; runs in the tenant's schema.
EXPORT_SOURCES: dict[str, Callable[[Tenant, Any], list[dict[str, Any]]]] = {}
# fn() -> {plan slug: {"requests": int, "spend": Decimal}}
USAGE_TOTALS: list[Callable[[], dict[str, dict[str, Any]]]] = []
# fn(tenant, user_id): remove a person's fields from your rows (keep the metrics); tenant schema.
USER_ERASE_HOOKS: list[Callable[[Tenant, int], None]] = []
# fn(tenant) -> {label: count}; runs in the public schema before the tenant row is deleted.
TENANT_PURGE_HOOKS: list[Callable[[Tenant], dict[str, int]]] = []


def register_export_source(name: str, fn: Callable[[Tenant, Any], list[dict[str, Any]]]) -> None:
    EXPORT_SOURCES[name] = fn


def register_usage_totals(fn: Callable[[], dict[str, dict[str, Any]]]) -> None:
    if fn not in USAGE_TOTALS:
        USAGE_TOTALS.append(fn)


def register_user_erase(fn: Callable[[Tenant, int], None]) -> None:
    if fn not in USER_ERASE_HOOKS:
        USER_ERASE_HOOKS.append(fn)


def register_tenant_purge(fn: Callable[[Tenant], dict[str, int]]) -> None:
    if fn not in TENANT_PURGE_HOOKS:
        TENANT_PURGE_HOOKS.append(fn)


def subscription_cancel(tenant: Tenant, *, reason: str) -> str:
    """Cancel the tenant's Paddle subscription through billing; never raises, returns an outcome."""
    try:
        cancel = import_string(SUBSCRIPTION_CANCEL)
    except ImportError:
        logger.warning("billing subscription_cancel is not available; tenant=%s", tenant.short_id)
        return "skipped: billing.services.subscription_cancel is not available"
    try:
        cancelled = cancel(tenant, reason=reason)
    except Exception as exc:
        logger.exception("subscription cancel failed tenant=%s", tenant.short_id)
        return f"failed: {type(exc).__name__}"
    return f"canceled: {len(cancelled or [])}"


def usage_totals_by_plan() -> dict[str, dict[str, Any]]:
    totals: dict[str, dict[str, Any]] = {}
    for fn in USAGE_TOTALS:
        for plan, values in fn().items():
            row = totals.setdefault(plan, {"requests": 0, "spend": Decimal("0")})
            row["requests"] += values.get("requests", 0)
            row["spend"] += values.get("spend", Decimal("0"))
    return totals
