"""Reprice a tenant's usage records with the current price book; rollups follow."""

from typing import Any

from django.core.management.base import CommandParser
from django.utils.dateparse import parse_datetime
from django_tenants.utils import tenant_context

from audit.insight import usage_reprice
from proxy.management.commands.anthropic_key_set import tenant_by_slug
from tokenscope.lib.commands import JsonCommand
from tokenscope.lib.errors import DomainError


class Command(JsonCommand):
    help = "Reprice usage records (keeps earlier figures in previous_costs, corrects rollups)."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--tenant", required=True, help="Tenant slug.")
        parser.add_argument("--since", help="ISO 8601 time.")
        parser.add_argument("--until", help="ISO 8601 time.")
        parser.add_argument("--unpriced", action="store_true", help="Only unpriced records.")

    def run(self, **options: Any) -> dict[str, Any]:
        tenant = tenant_by_slug(options["tenant"])
        bounds: dict[str, Any] = {}
        for name in ("since", "until"):
            if options.get(name):
                moment = parse_datetime(options[name])
                if moment is None or moment.tzinfo is None:
                    raise DomainError(f"--{name} must be an ISO time with a zone.")
                bounds[name] = moment
        with tenant_context(tenant):
            return usage_reprice(unpriced_only=options["unpriced"], **bounds)
