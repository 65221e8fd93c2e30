"""Add a budget: `budget_add --tenant S --scope tenant|project:P|cost_center:C|key:ID|user:EMAIL
--amount USD --period day|week|month [--block] [--thresholds 50,80,100] [--json]`."""

from typing import Any

from django.core.management.base import CommandParser
from django_tenants.utils import tenant_context

from accounts.models import User
from proxy.budgets.services import budget_create
from proxy.management.commands.anthropic_key_set import tenant_by_slug
from proxy.models import CostCenter, Project, ProxyKey
from tokenscope.lib.commands import JsonCommand
from tokenscope.lib.errors import DomainError, NotFound


def _target(scope: str) -> tuple[str, Any]:
    kind, _, value = scope.partition(":")
    if kind == "tenant" and not value:
        return "tenant", None
    lookups: dict[str, tuple[Any, str]] = {
        "project": (Project, "name"),
        "cost_center": (CostCenter, "code"),
        "key": (ProxyKey, "pk"),
        "user": (User, "email"),
    }
    if kind not in lookups or not value:
        raise DomainError(
            "--scope is tenant, project:NAME, cost_center:CODE, key:ID or user:EMAIL."
        )
    model, field = lookups[kind]
    try:
        obj = model.objects.filter(**{field: value}).first()
    except (ValueError, TypeError):  # e.g. a key id that is not a UUID
        obj = None
    if obj is None:
        raise NotFound(f"No {kind.replace('_', ' ')} {value!r}.")
    return kind, obj


class Command(JsonCommand):
    help = "Create a budget on a tenant, project, cost center, proxy key or key owner."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--tenant", required=True, help="Tenant slug.")
        parser.add_argument(
            "--scope",
            required=True,
            help="tenant | project:P | cost_center:C | key:ID | user:EMAIL",
        )
        parser.add_argument("--amount", required=True, help="USD per period, e.g. 250.00.")
        parser.add_argument("--period", required=True, choices=["day", "week", "month"])
        parser.add_argument("--block", action="store_true", help="Refuse requests at 100 %.")
        parser.add_argument("--name", default="", help="A name (default: scope and period).")
        parser.add_argument("--thresholds", default="50,80,100", help="Alert percentages.")

    def run(self, **options: Any) -> dict[str, Any]:
        tenant = tenant_by_slug(options["tenant"])
        try:
            thresholds = [int(t) for t in options["thresholds"].split(",") if t.strip()]
        except ValueError:
            raise DomainError("--thresholds takes whole percentages, e.g. 50,80,100.") from None
        with tenant_context(tenant):
            scope, target = _target(options["scope"])
            budget = budget_create(
                None,
                tenant=tenant,
                name=options["name"] or f"{options['scope']} per {options['period']}",
                scope=scope,
                target=target,
                amount_usd=options["amount"],
                period=options["period"],
                thresholds=thresholds,
                block=options["block"],
            )
        return {
            "id": budget.pk,
            "name": budget.name,
            "scope": budget.scope,
            "target": None if budget.target_id is None else str(budget.target_id),
            "amount_usd": f"{budget.amount_usd:f}",
            "period": budget.period,
            "thresholds": budget.thresholds,
            "block": budget.block,
        }
