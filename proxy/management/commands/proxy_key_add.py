"""Create a proxy key bound to a project and a cost center; prints the key once."""

from typing import Any

from django.core.management.base import CommandParser
from django_tenants.utils import tenant_context

from proxy.management.commands.anthropic_key_set import tenant_by_slug
from proxy.models import CostCenter, Project
from proxy.services import cost_center_create, project_create, proxy_key_create
from tokenscope.lib.commands import JsonCommand
from tokenscope.lib.errors import NotFound


class Command(JsonCommand):
    help = "Create a proxy key (tsk_…) for a tenant's project and cost center."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--tenant", required=True, help="Tenant slug.")
        parser.add_argument("--project", required=True, help="Project name.")
        parser.add_argument("--cost-center", required=True, help="Cost center code.")
        parser.add_argument("--name", default="", help="A label for the key.")
        parser.add_argument(
            "--create", action="store_true", help="Create the project or cost center if missing."
        )

    def run(self, **options: Any) -> dict[str, Any]:
        tenant = tenant_by_slug(options["tenant"])
        with tenant_context(tenant):
            cost_center = CostCenter.objects.filter(code=options["cost_center"]).first()
            if cost_center is None:
                if not options["create"]:
                    raise NotFound(f"No cost center {options['cost_center']!r} (use --create).")
                code = options["cost_center"]
                cost_center = cost_center_create(None, tenant=tenant, code=code, name=code)
            project = Project.objects.filter(name=options["project"]).first()
            if project is None:
                if not options["create"]:
                    raise NotFound(f"No project {options['project']!r} (use --create).")
                project = project_create(
                    None, tenant=tenant, name=options["project"], default_cost_center=cost_center
                )
            proxy_key, key = proxy_key_create(
                None, tenant=tenant, project=project, cost_center=cost_center, name=options["name"]
            )
        return {
            "id": str(proxy_key.pk),
            "key": key,
            "project": project.name,
            "cost_center": cost_center.code,
        }
