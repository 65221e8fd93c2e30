"""Reads for the Budgets and Notifications pages."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.utils import timezone

from proxy.budget_models import Budget, Notification, SpendSettings
from proxy.budgets.periods import PeriodWindow, period_window
from proxy.budgets.rebuild import spent_usd
from proxy.budgets.rules import nano_to_usd
from tenants.models import Tenant


@dataclass
class BudgetProgress:
    budget: Budget
    window: PeriodWindow
    resets_at: datetime  # local time of the tenant
    spent: Decimal  # PostgreSQL: settled usage records of the period
    reserved: Decimal | None  # Redis: held by requests in flight (None: unavailable)
    projected: Decimal  # linear projection of `spent` to the end of the period

    @property
    def percent(self) -> int:
        return min(100, int(self.spent * 100 / self.budget.amount_usd))

    @property
    def projected_percent(self) -> int:
        return int(self.projected * 100 / self.budget.amount_usd)


def _reserved(key: str) -> Decimal | None:
    from proxy.budgets.services import budget_redis

    try:
        value = budget_redis().hget(key, "r")
    except Exception:
        return None
    return nano_to_usd(int(value)) if value is not None else Decimal(0)


def budget_progress_list(tenant: Tenant, *, at: datetime | None = None) -> list[BudgetProgress]:
    """Every budget with its current period's spend, reservations and projection."""
    now = at or timezone.now()
    zone = ZoneInfo(tenant.time_zone)
    rows = []
    for budget in Budget.objects.select_related("project", "cost_center", "proxy_key", "user"):
        window = period_window(budget.period, now, tenant.time_zone, tenant.week_starts_on)
        spent = spent_usd(tenant.schema_name, budget.scope, budget.target_id, window.start, now)
        fraction = Decimal(str(window.elapsed_fraction(now)))
        projected = (spent / fraction).quantize(Decimal("0.01")) if fraction > 0 else spent
        rows.append(
            BudgetProgress(
                budget=budget,
                window=window,
                resets_at=timezone.localtime(window.end, zone),
                spent=spent,
                reserved=_reserved(f"ts:bud:{tenant.schema_name}:{budget.pk}:{window.key}"),
                projected=projected,
            )
        )
    return rows


def notification_list(limit: int = 200) -> list[Notification]:
    return list(Notification.objects.select_related("budget")[:limit])


def spend_settings() -> SpendSettings | None:
    return SpendSettings.objects.first()
