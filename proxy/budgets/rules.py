"""What the gateway needs to know about a tenant's budgets and limits, loaded in one go."""

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import close_old_connections
from django_tenants.utils import schema_context

NANO = Decimal(1_000_000_000)  # counters hold integer nano-USD (1e-9): exact and < 2**53


def usd_to_nano(amount: Decimal) -> int:
    """Nano-USD, rounded up: a cost or a reservation is never counted short."""
    return math.ceil(amount * NANO)


def nano_to_usd(nano: int) -> Decimal:
    return Decimal(nano) / NANO


@dataclass(frozen=True)
class BudgetRule:
    id: int
    name: str
    scope: str
    target: str | None
    amount_usd: Decimal
    period: str
    thresholds: tuple[int, ...]
    block: bool

    @property
    def amount_nano(self) -> int:
        return math.floor(self.amount_usd * NANO)

    def applies_to(self, key: Any) -> bool:
        if self.scope == "tenant":
            return True
        value = {
            "project": key.project_id,
            "cost_center": key.cost_center_id,
            "key": key.id,
            "user": key.owner_id,
        }.get(self.scope)
        return value is not None and str(value) == self.target


@dataclass(frozen=True)
class TenantRules:
    schema: str
    generation: str
    time_zone: str
    week_starts_on: str
    budgets: tuple[BudgetRule, ...]
    plan_name: str
    monthly_request_limit: int | None
    rpm_limit: int | None
    input_tpm_limit: int | None
    output_tpm_limit: int | None

    def applicable(self, key: Any) -> list[BudgetRule]:
        return [rule for rule in self.budgets if rule.applies_to(key)]


def generation_key(schema: str) -> str:
    return f"ts:budget-gen:{schema}"


def tenant_rules_load(schema: str, generation: str) -> TenantRules:
    """Read the tenant's budgets, plan allowance and tenant-wide limits (runs in a thread)."""
    from proxy.budget_models import Budget, SpendSettings
    from tenants.models import Tenant

    close_old_connections()
    tenant = Tenant.objects.select_related("plan").get(schema_name=schema)
    with schema_context(schema):
        budgets = tuple(
            BudgetRule(
                id=budget.pk,
                name=budget.name,
                scope=budget.scope,
                target=None if budget.target_id is None else str(budget.target_id),
                amount_usd=budget.amount_usd,
                period=budget.period,
                thresholds=tuple(sorted(int(t) for t in budget.thresholds)),
                block=budget.block,
            )
            for budget in Budget.objects.all()
        )
        limits = SpendSettings.objects.first()
    return TenantRules(
        schema=schema,
        generation=generation,
        time_zone=tenant.time_zone,
        week_starts_on=tenant.week_starts_on,
        budgets=budgets,
        plan_name=tenant.plan.name,
        monthly_request_limit=tenant.plan.monthly_request_limit,
        rpm_limit=limits.rpm_limit if limits else None,
        input_tpm_limit=limits.input_tpm_limit if limits else None,
        output_tpm_limit=limits.output_tpm_limit if limits else None,
    )
