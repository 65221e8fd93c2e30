"""Counters from the source of truth: sums of usage records in PostgreSQL (runs in a thread)."""

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import close_old_connections, connection, transaction
from django.db.models import F, Q, Sum, Value
from django.db.models.functions import Ceil
from django_tenants.utils import schema_context

from audit.models import UsageRecord
from proxy.budgets.rules import NANO, BudgetRule


def scope_filter(scope: str, target: Any) -> Q:
    field = {
        "tenant": None,
        "project": "project_id",
        "cost_center": "cost_center_id",
        "key": "proxy_key_id",
        "user": "key_owner_id",
    }[scope]
    return Q() if field is None else Q(**{field: target})


# A rebuild runs while a request waits: it gives up rather than hang on a locked table.
REBUILD_STATEMENT_TIMEOUT_MS = 2000


def _limit_statement_time() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL statement_timeout = {REBUILD_STATEMENT_TIMEOUT_MS}")


def budget_spent_nano(schema: str, rule: BudgetRule, start: datetime, end: datetime) -> int:
    """Nano-USD spent in [start, end) within the budget's scope, each record rounded up."""
    close_old_connections()
    with schema_context(schema), transaction.atomic():
        _limit_statement_time()
        total = (
            UsageRecord.objects.filter(scope_filter(rule.scope, rule.target))
            .filter(created_at__gte=start, created_at__lt=end)
            .aggregate(total=Sum(Ceil(F("cost_usd") * Value(NANO))))["total"]
        )
    return int(total or 0)


def plan_requests(schema: str, start: datetime, end: datetime) -> int:
    """Requests forwarded to Anthropic in [start, end) that count against the plan allowance."""
    close_old_connections()
    with schema_context(schema), transaction.atomic():
        _limit_statement_time()
        return (
            UsageRecord.objects.filter(created_at__gte=start, created_at__lt=end)
            .filter(upstream_ms__isnull=False)
            .filter(Q(kind=UsageRecord.Kind.MESSAGES) | Q(endpoint="POST /v1/messages/batches"))
            .count()
        )


def spent_usd(schema: str, scope: str, target: Any, start: datetime, end: datetime) -> Decimal:
    """Exact USD spent in a scope and period (for pages and reports)."""
    with schema_context(schema):
        total = (
            UsageRecord.objects.filter(scope_filter(scope, target))
            .filter(created_at__gte=start, created_at__lt=end)
            .aggregate(total=Sum("cost_usd"))["total"]
        )
    return total or Decimal(0)
