import json
import secrets
from pathlib import Path
from typing import Any

from allauth.account.models import EmailAddress
from django.conf import settings
from django_tenants.utils import schema_context

from accounts.models import User
from tenants.models import Plan, Tenant
from tenants.services import tenant_create, tenant_host
from tokenscope.lib.commands import JsonCommand

DEMO_SLUG = "demo"
CREDENTIALS_FILE = Path(settings.BASE_DIR) / ".local" / "demo-credentials.json"
# The fake upstream accepts any well-formed key; a real one comes from ANTHROPIC_API_KEY.
FAKE_ANTHROPIC_KEY = "sk-ant-api03-demo-fake-upstream-key-0000000000000000000000000000-AAAA"


def _stored() -> dict[str, str]:
    if CREDENTIALS_FILE.exists():
        stored: dict[str, str] = json.loads(CREDENTIALS_FILE.read_text())
        return stored
    return {
        "owner_email": "owner@demo.example.com",
        "owner_password": secrets.token_urlsafe(12),
        "operator_email": "operator@aitokenscope.example.com",
        "operator_password": secrets.token_urlsafe(12),
    }


def _save(credentials: dict[str, str]) -> None:
    """Demo secrets stay in the git-ignored .local/, readable by this user only."""
    CREDENTIALS_FILE.parent.mkdir(exist_ok=True)
    CREDENTIALS_FILE.write_text(json.dumps(credentials))
    CREDENTIALS_FILE.chmod(0o600)


def _workspace(tenant: Tenant, credentials: dict[str, str], anthropic_key: str) -> None:
    """A cost center, a project, the Anthropic key and a proxy key for the demo owner."""
    from proxy.models import AnthropicCredential, CostCenter, Project
    from proxy.selectors import proxy_key_for_secret
    from proxy.services import (
        anthropic_credential_set,
        cost_center_create,
        project_create,
        proxy_key_create,
    )

    with schema_context(tenant.schema_name):
        owner = User.objects.get(email=credentials["owner_email"])
        center = CostCenter.objects.filter(code="ENG").first() or cost_center_create(
            owner, tenant=tenant, code="ENG", name="Engineering", owner_email=owner.email
        )
        project = Project.objects.filter(name="Support Assistant").first() or project_create(
            owner,
            tenant=tenant,
            name="Support Assistant",
            purpose="Draft answers to customer support tickets about our billing product.",
            default_cost_center=center,
        )
        if not AnthropicCredential.objects.filter(project__isnull=True).exists():
            anthropic_credential_set(owner, tenant=tenant, key=anthropic_key)
        stored_key = credentials.get("proxy_key", "")
        if not stored_key or proxy_key_for_secret(stored_key) is None:
            _row, credentials["proxy_key"] = proxy_key_create(
                owner, tenant=tenant, project=project, cost_center=center, name="demo"
            )


class Command(JsonCommand):
    help = "Create (once) the demo tenant, its owner, workspace and proxy key, and an operator."

    def add_arguments(self, parser: Any) -> None:
        super().add_arguments(parser)
        parser.add_argument("--anthropic-key", default="", help="A real key; else the fake's.")

    def run(self, **options: Any) -> dict[str, Any]:
        credentials = _stored()
        tenant = Tenant.objects.filter(slug=DEMO_SLUG).first()
        if tenant is None:
            tenant = tenant_create(
                name="Demo Company",
                slug=DEMO_SLUG,
                owner_name="Demo Owner",
                owner_email=credentials["owner_email"],
                owner_password=credentials["owner_password"],
                plan_slug=Plan.Slug.TEAM,
                owner_email_verified=True,
            )
        _workspace(tenant, credentials, options["anthropic_key"] or FAKE_ANTHROPIC_KEY)
        with schema_context("public"):
            if not User.objects.filter(email=credentials["operator_email"]).exists():
                operator = User.objects.create_superuser(
                    credentials["operator_email"], credentials["operator_password"]
                )
                EmailAddress.objects.create(
                    user=operator, email=operator.email, primary=True, verified=True
                )
        _save(credentials)
        return {"slug": tenant.slug, "host": tenant_host(tenant), **credentials}
