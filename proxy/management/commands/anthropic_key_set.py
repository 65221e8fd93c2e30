"""Store a tenant's Anthropic API key (encrypted); prints only its id and hint."""

from typing import Any

from django.core.management.base import CommandParser
from django_tenants.utils import tenant_context

from proxy.models import Project
from proxy.services import anthropic_credential_set
from tenants.models import Tenant
from tokenscope.lib.commands import JsonCommand
from tokenscope.lib.errors import NotFound


def tenant_by_slug(slug: str) -> Tenant:
    tenant = Tenant.objects.customers().filter(slug=slug).first()
    if tenant is None:
        raise NotFound(f"No tenant {slug!r}.")
    return tenant


class Command(JsonCommand):
    help = "Set (or replace) the Anthropic API key of a tenant or of one of its projects."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--tenant", required=True, help="Tenant slug.")
        parser.add_argument("--key", required=True, help="The Anthropic API key (sk-ant-api03-…).")
        parser.add_argument("--project", help="Project name; omit for the tenant default.")
        parser.add_argument("--verify", action="store_true", help="Check the key upstream first.")

    def run(self, **options: Any) -> dict[str, Any]:
        tenant = tenant_by_slug(options["tenant"])
        with tenant_context(tenant):
            project = None
            if options.get("project"):
                project = Project.objects.filter(name=options["project"]).first()
                if project is None:
                    raise NotFound(f"No project {options['project']!r}.")
            credential = anthropic_credential_set(
                None, tenant=tenant, key=options["key"], project=project, verify=options["verify"]
            )
        return {"id": str(credential.pk), "hint": credential.hint}
