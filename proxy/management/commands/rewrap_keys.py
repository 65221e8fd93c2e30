"""Rewrap every stored data key under the current KEK version; ciphertexts stay unchanged."""

from typing import Any

from django.core.management.base import CommandError, CommandParser
from django_tenants.utils import tenant_context

from proxy.custody import kek_provider
from proxy.services import anthropic_credentials_rewrap
from tenants.models import Tenant
from tokenscope.lib.commands import JsonCommand


class Command(JsonCommand):
    help = "Rewrap data keys not under the current KEK version (safe to re-run)."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--tenant", help="Only this tenant (slug).")

    def run(self, **options: Any) -> dict[str, Any]:
        tenants = Tenant.objects.customers().order_by("slug")
        if options.get("tenant"):
            tenants = tenants.filter(slug=options["tenant"])
        totals = {"tenants": 0, "rewrapped": 0, "already_current": 0, "failed": 0}
        for tenant in tenants:
            with tenant_context(tenant):
                counts = anthropic_credentials_rewrap(tenant=tenant)
            totals["tenants"] += 1
            for name, value in counts.items():
                totals[name] += value
        self.failed = totals["failed"]
        return {"kek_id": kek_provider().current_kek_id, **totals}

    def handle(self, *args: Any, **options: Any) -> None:
        self.failed = 0
        super().handle(*args, **options)
        if self.failed:
            # Counts were printed; a non-zero exit makes schedulers and operators notice.
            raise CommandError(f"{self.failed} rows could not be rewrapped; see the log.")
