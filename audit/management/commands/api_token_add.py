"""Create an API token for a tenant user; prints it once (`--json` → {"token": …})."""

from typing import Any

from django.core.management.base import CommandParser
from django_tenants.utils import tenant_context

from accounts.models import User
from audit.insight import api_token_create
from audit.models import ApiToken
from proxy.management.commands.anthropic_key_set import tenant_by_slug
from tokenscope.lib.commands import JsonCommand
from tokenscope.lib.errors import NotFound


class Command(JsonCommand):
    help = "Create an API token (tsa_…) acting as a tenant user."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--tenant", required=True, help="Tenant slug.")
        parser.add_argument("--email", required=True, help="The user the token acts as.")
        parser.add_argument("--scope", choices=ApiToken.Scope.values, default="read")
        parser.add_argument("--name", default="", help="A label for the token.")

    def run(self, **options: Any) -> dict[str, Any]:
        tenant = tenant_by_slug(options["tenant"])
        with tenant_context(tenant):
            user = User.objects.filter(email__iexact=options["email"]).first()
            if user is None:
                raise NotFound(f"No user {options['email']!r} in {tenant.slug}.")
            row, token = api_token_create(
                None, user=user, scope=options["scope"], name=options["name"] or "CLI"
            )
        return {"token": token, "id": row.pk, "scope": row.scope, "user": user.email}
