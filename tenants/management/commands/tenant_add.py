from typing import Any

from django.core.management.base import CommandParser

from tenants.models import Plan
from tenants.services import tenant_create, tenant_host
from tokenscope.lib.commands import JsonCommand


class Command(JsonCommand):
    help = "Create a tenant with its schema, subdomain and owner."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--slug", required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument("--owner-email", required=True)
        parser.add_argument("--owner-password", required=True)
        parser.add_argument("--owner-name", default="")
        parser.add_argument("--plan", default=Plan.Slug.FREE, choices=Plan.Slug.values)

    def run(self, **options: Any) -> dict[str, Any]:
        tenant = tenant_create(
            name=options["name"],
            slug=options["slug"],
            owner_email=options["owner_email"],
            owner_password=options["owner_password"],
            owner_name=options["owner_name"],
            plan_slug=options["plan"],
            owner_email_verified=True,
        )
        return {
            "id": tenant.short_id,
            "slug": tenant.slug,
            "schema": tenant.schema_name,
            "host": tenant_host(tenant),
        }
