"""Run a privacy job now: `manage.py privacy_run retention|deletions|expire-requests [--json]`."""

from typing import Any

from django.core.management.base import CommandParser

from privacy.deletion import deletions_run
from privacy.retention import expired_purge, retention_purge
from privacy.services import privacy_requests_expire
from tenants.models import Tenant
from tokenscope.lib.commands import JsonCommand
from tokenscope.lib.errors import DomainError


class Command(JsonCommand):
    help = "Run a privacy job at once (the same code beat runs nightly)."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("job", choices=["retention", "deletions", "expire-requests"])
        parser.add_argument("--tenant", help="Slug: purge only this tenant (retention).")

    def run(self, **options: Any) -> dict[str, Any]:
        job = options["job"]
        if job == "deletions":
            return {"purged_tenants": deletions_run()}
        if job == "expire-requests":
            return {"expired_requests": privacy_requests_expire()}
        tenants = Tenant.objects.customers().filter(status=Tenant.Status.ACTIVE)
        if options.get("tenant"):
            tenants = tenants.filter(slug=options["tenant"])
            if not tenants.exists():
                raise DomainError(f"No active tenant {options['tenant']!r}.")
        deleted = {tenant.slug: retention_purge(tenant) for tenant in tenants}
        return {"expired_public_rows": expired_purge(), "deleted": deleted}
