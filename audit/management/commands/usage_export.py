"""Print a tenant's usage records as JSON Lines or CSV (streamed, constant memory)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_datetime
from django_tenants.utils import tenant_context

from audit.exports import USAGE_FIELDS, encode, usage_tuples
from audit.models import UsageRecord
from proxy.management.commands.anthropic_key_set import tenant_by_slug
from tokenscope.lib.errors import DomainError


class Command(BaseCommand):
    help = "Print a tenant's usage records (the API's fields) as JSON Lines or CSV."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="Tenant slug.")
        parser.add_argument("--format", choices=["json", "jsonl", "csv"], default="json")
        parser.add_argument("--since", help="ISO 8601 time (records at or after).")
        parser.add_argument("--until", help="ISO 8601 time (records before).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            tenant = tenant_by_slug(options["tenant"])
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        fmt = "csv" if options["format"] == "csv" else "jsonl"
        with tenant_context(tenant):
            qs = UsageRecord.objects.select_related(None).order_by("created_at", "id")
            for name, lookup in (("since", "created_at__gte"), ("until", "created_at__lt")):
                if options.get(name):
                    moment = parse_datetime(options[name])
                    if moment is None or moment.tzinfo is None:
                        raise CommandError(f"--{name} must be an ISO time with a zone.")
                    qs = qs.filter(**{lookup: moment})
            include = not tenant.privacy_mode
            for chunk in encode(usage_tuples(qs, include_prompt=include), USAGE_FIELDS, fmt):
                self.stdout.write(chunk.decode(), ending="")
