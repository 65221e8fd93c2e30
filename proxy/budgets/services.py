"""Writes of budgets and spend settings; every change bumps the tenant's budget generation so
gateways reload their rules on the next request (the Lua script compares generations, and the
change notice makes them drop their leases at once)."""

import logging
from decimal import Decimal, InvalidOperation
from typing import Any

import redis
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest

from accounts.models import Role, User
from audit.services import audit_event_record
from proxy.budget_models import DEFAULT_THRESHOLDS, Budget, SpendSettings
from proxy.budgets.rules import generation_key
from proxy.models import CostCenter, Project, ProxyKey
from proxy.services import config_changed_notify
from tenants.models import Tenant
from tokenscope.lib.errors import DomainError, PermissionDenied

logger = logging.getLogger(__name__)

_redis: redis.Redis | None = None
MAX_AMOUNT = Decimal("1000000")


def budget_redis() -> redis.Redis:
    global _redis
    if _redis is None:
        url = getattr(settings, "BUDGET_REDIS_URL", "") or settings.REDIS_URL
        _redis = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    return _redis


def budget_generation_bump(tenant: Tenant) -> None:
    """After commit, INCR the tenant's budget generation (gateways reload their rules), then
    tell every gateway process (pub/sub) to stop using what it leased under the old rules."""
    key = generation_key(tenant.schema_name)

    def bump() -> None:
        try:
            budget_redis().incr(key)
        except Exception as exc:  # rules are re-read within RULES_MAX_AGE anyway
            logger.warning("Could not bump %s: %s", key, type(exc).__name__)

    transaction.on_commit(bump)
    config_changed_notify(tenant)


def _admin_only(actor: User | None) -> None:
    if actor is not None and not actor.has_role(Role.ADMIN):
        raise PermissionDenied("Only owners and admins can change budgets.")


def _clean(
    *, name: str, scope: str, target: Any, amount_usd: Any, period: str, thresholds: Any
) -> dict[str, Any]:
    name = (name or "").strip()
    if not name:
        raise DomainError("A budget needs a name.", field="name")
    try:
        amount = Decimal(str(amount_usd))
    except (InvalidOperation, ValueError):
        raise DomainError("Enter the amount in USD, e.g. 250.00.", field="amount_usd") from None
    if not amount.is_finite() or amount <= 0 or amount > MAX_AMOUNT:
        raise DomainError(
            "The amount must be above 0 and at most 1,000,000 USD.", field="amount_usd"
        )
    if amount != amount.quantize(Decimal("0.000001")):
        raise DomainError("Use at most 6 decimal places.", field="amount_usd")
    if period not in Budget.Period.values:
        raise DomainError("The period is day, week or month.", field="period")
    levels = sorted({int(t) for t in (thresholds or DEFAULT_THRESHOLDS)})
    if not levels or levels[0] < 1 or levels[-1] > 1000:
        raise DomainError("Thresholds are percentages between 1 and 1000.", field="thresholds")
    fields: dict[str, Any] = {
        "name": name[:120],
        "scope": scope,
        "amount_usd": amount.quantize(Decimal("0.000001")),
        "period": period,
        "thresholds": levels,
        "project": None,
        "cost_center": None,
        "proxy_key": None,
        "user": None,
    }
    models = {"project": Project, "cost_center": CostCenter, "key": ProxyKey, "user": User}
    if scope == Budget.Scope.TENANT:
        return fields
    if scope not in models:
        raise DomainError("Unknown budget scope.", field="scope")
    model: Any = models[scope]
    obj = target if isinstance(target, model) else model.objects.filter(pk=target).first()
    if obj is None:
        raise DomainError(f"No such {Budget.Scope(scope).label.lower()}.", field="scope")
    fields["proxy_key" if scope == "key" else scope] = obj
    return fields


def _audited(budget: Budget) -> dict[str, Any]:
    """What the audit log keeps of a budget's settings."""
    return {
        "amount_usd": str(budget.amount_usd),
        "period": budget.period,
        "scope": budget.scope,
        "block": budget.block,
    }


def budget_create(
    actor: User | None,
    *,
    tenant: Tenant,
    name: str,
    scope: str,
    amount_usd: Any,
    period: str,
    target: Any = None,
    thresholds: list[int] | None = None,
    block: bool = False,
    extra_recipients: str = "",
    request: HttpRequest | None = None,
) -> Budget:
    """Create a budget; it counts the current period's earlier spend from its first request."""
    _admin_only(actor)
    fields = _clean(
        name=name,
        scope=scope,
        target=target,
        amount_usd=amount_usd,
        period=period,
        thresholds=thresholds,
    )
    with transaction.atomic():
        budget = Budget.objects.create(
            **fields,
            block=block,
            extra_recipients=extra_recipients.strip(),
            created_by=actor if actor is not None and actor.pk else None,
        )
        audit_event_record(
            actor,
            action="budget.created",
            object_type="budget",
            object_id=budget.pk,
            object_repr=str(budget),
            request=request,
            changes=_audited(budget),
        )
        budget_generation_bump(tenant)
    return budget


def budget_update(
    actor: User | None,
    *,
    tenant: Tenant,
    budget: Budget,
    name: str,
    scope: str,
    amount_usd: Any,
    period: str,
    target: Any = None,
    thresholds: list[int] | None = None,
    block: bool = False,
    extra_recipients: str = "",
    request: HttpRequest | None = None,
) -> Budget:
    """Change a budget; counters of a changed scope or period start from PostgreSQL."""
    _admin_only(actor)
    fields = _clean(
        name=name,
        scope=scope,
        target=target,
        amount_usd=amount_usd,
        period=period,
        thresholds=thresholds,
    )
    fields.update(block=block, extra_recipients=extra_recipients.strip())
    before = _audited(budget)
    with transaction.atomic():
        for field, value in fields.items():
            setattr(budget, field, value)
        budget.save()
        # A new scope or period must not reuse counters of the old one.
        if before["scope"] != budget.scope or before["period"] != budget.period:
            transaction.on_commit(lambda: budget_counters_drop(tenant, budget.pk))
        audit_event_record(
            actor,
            action="budget.updated",
            object_type="budget",
            object_id=budget.pk,
            object_repr=str(budget),
            request=request,
            changes={"before": before},
        )
        budget_generation_bump(tenant)
    return budget


def budget_delete(
    actor: User | None, *, tenant: Tenant, budget: Budget, request: HttpRequest | None = None
) -> None:
    _admin_only(actor)
    budget_id = budget.pk
    with transaction.atomic():
        audit_event_record(
            actor,
            action="budget.deleted",
            object_type="budget",
            object_id=budget_id,
            object_repr=str(budget),
            request=request,
        )
        # Lock first: an alert being inserted right now finishes, then is deleted with it.
        Budget.objects.select_for_update().filter(pk=budget_id).exists()
        Budget.objects.filter(pk=budget_id).delete()
        transaction.on_commit(lambda: budget_counters_drop(tenant, budget_id))
        budget_generation_bump(tenant)


def budget_counters_drop(tenant: Tenant, budget_id: int) -> int:
    """Delete a budget's Redis counters (they are rebuilt from PostgreSQL when needed)."""
    try:
        client = budget_redis()
        keys = list(client.scan_iter(f"ts:bud:{tenant.schema_name}:{budget_id}:*", count=500))
        return int(client.delete(*keys)) if keys else 0
    except Exception as exc:
        logger.warning("Could not drop budget counters: %s", type(exc).__name__)
        return 0


def spend_settings_update(
    actor: User | None,
    *,
    tenant: Tenant,
    webhook_url: str = "",
    rpm_limit: int | None = None,
    input_tpm_limit: int | None = None,
    output_tpm_limit: int | None = None,
    request: HttpRequest | None = None,
) -> SpendSettings:
    """Set the alert webhook and the workspace-wide rate limits."""
    _admin_only(actor)
    webhook_url = webhook_url.strip()
    if webhook_url and not webhook_url.startswith("https://") and not settings.DEBUG:
        raise DomainError("The webhook URL must use https.", field="webhook_url")
    with transaction.atomic():
        row, _ = SpendSettings.objects.get_or_create(singleton=True)
        row.webhook_url = webhook_url
        row.rpm_limit = rpm_limit
        row.input_tpm_limit = input_tpm_limit
        row.output_tpm_limit = output_tpm_limit
        row.save()
        audit_event_record(
            actor,
            action="spend_settings.updated",
            object_type="spend_settings",
            object_id=row.pk,
            object_repr="Spend settings",
            request=request,
            changes={
                "webhook_set": bool(webhook_url),
                "rpm_limit": rpm_limit,
                "input_tpm_limit": input_tpm_limit,
                "output_tpm_limit": output_tpm_limit,
            },
        )
        budget_generation_bump(tenant)
    return row
