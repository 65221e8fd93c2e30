import json
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django_tenants.utils import schema_context

from accounts.models import User
from tenants.models import Plan, Tenant
from tenants.services import tenant_create, tenant_host
from tokenscope.lib.commands import JsonCommand

DEMO_SLUG = "demo"
CREDENTIALS_FILE = Path(settings.BASE_DIR) / ".local" / "demo-credentials.json"


def _credentials() -> dict[str, str]:
    """Random demo passwords, made once per checkout and kept in the git-ignored .local/."""
    if CREDENTIALS_FILE.exists():
        stored: dict[str, str] = json.loads(CREDENTIALS_FILE.read_text())
        return stored
    credentials = {
        "owner_email": "owner@demo.example.com",
        "owner_password": secrets.token_urlsafe(12),
        "operator_email": "operator@aitokenscope.example.com",
        "operator_password": secrets.token_urlsafe(12),
    }
    CREDENTIALS_FILE.parent.mkdir(exist_ok=True)
    CREDENTIALS_FILE.write_text(json.dumps(credentials))
    CREDENTIALS_FILE.chmod(0o600)
    return credentials


class Command(JsonCommand):
    help = "Create (once) the demo tenant, its owner and an operator for local development."

    def run(self, **options: Any) -> dict[str, Any]:
        credentials = _credentials()
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
        with schema_context("public"):
            if not User.objects.filter(email=credentials["operator_email"]).exists():
                User.objects.create_superuser(
                    credentials["operator_email"], credentials["operator_password"]
                )
        return {"slug": tenant.slug, "host": tenant_host(tenant), **credentials}
