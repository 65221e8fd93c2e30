"""Classify a tenant's stored usage records again, e.g. after its taxonomy changed."""

from typing import Any

from django.core.management.base import CommandParser
from django.utils.dateparse import parse_datetime
from django_tenants.utils import tenant_context

from audit.classification.reclassify import usage_reclassify
from proxy.management.commands.anthropic_key_set import tenant_by_slug
from tokenscope.lib.commands import JsonCommand
from tokenscope.lib.errors import DomainError


class Command(JsonCommand):
    help = (
        "Re-run classification on messages records from their stored prompt text; Privacy Mode "
        "records (no text) and key owners who restricted processing are skipped and counted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--tenant", required=True, help="Tenant slug.")
        parser.add_argument("--since", help="ISO 8601 time with a zone (inclusive).")
        parser.add_argument("--until", help="ISO 8601 time with a zone (exclusive).")
        parser.add_argument("--batch", type=int, default=500, help="Records per transaction.")

    def run(self, **options: Any) -> dict[str, Any]:
        tenant = tenant_by_slug(options["tenant"])
        bounds: dict[str, Any] = {}
        for name in ("since", "until"):
            if options.get(name):
                moment = parse_datetime(options[name])
                if moment is None or moment.tzinfo is None:
                    raise DomainError(f"--{name} must be an ISO time with a zone.")
                bounds[name] = moment
        if options["batch"] < 1:
            raise DomainError("--batch must be at least 1.")
        with tenant_context(tenant):
            return usage_reclassify(tenant, batch=options["batch"], **bounds)
