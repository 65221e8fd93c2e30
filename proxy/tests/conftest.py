import pytest
from django.conf import settings

from conftest import PASSWORD
from proxy.fake_upstream.server import running_fake_upstream
from proxy.gateway import Gateway
from proxy.tests.gateway_support import (
    ANTHROPIC_KEY_A,
    ANTHROPIC_KEY_B,
    ANTHROPIC_KEY_P,
    extra_key,
    workspace_create,
)
from tenants.models import Tenant
from tenants.services import tenant_create
from tokenscope.lib.asgi_server import serve_in_thread


@pytest.fixture(scope="session")
def fake_upstream():
    with running_fake_upstream() as fake:
        yield fake


@pytest.fixture(scope="session")
def proxy_url(fake_upstream):
    """A live gateway forwarding to the fake upstream."""
    previous = settings.ANTHROPIC_UPSTREAM_URL
    settings.ANTHROPIC_UPSTREAM_URL = fake_upstream.base_url
    with serve_in_thread(Gateway()) as url:
        yield url
    settings.ANTHROPIC_UPSTREAM_URL = previous


@pytest.fixture(scope="session")
def workspaces(tenants_ab, django_db_blocker):
    """Committed workspaces: A (keys of every kind), B, and P (Privacy Mode on)."""
    with django_db_blocker.unblock():
        tenant_p = Tenant.objects.filter(slug="tenant-p").first() or tenant_create(
            name="Tenant P",
            slug="tenant-p",
            owner_email="owner@tenant-p.example.com",
            owner_password=PASSWORD,
            owner_email_verified=True,
        )
        Tenant.objects.filter(pk=tenant_p.pk).update(privacy_mode=True)
        tenant_p.refresh_from_db()
        a = workspace_create(tenants_ab["a"], ANTHROPIC_KEY_A)
        return {
            "a": a,
            "b": workspace_create(tenants_ab["b"], ANTHROPIC_KEY_B),
            "p": workspace_create(tenant_p, ANTHROPIC_KEY_P),
            "a_revoked": extra_key(a, revoked=True, name="revoked"),
            "a_expired": extra_key(a, name="expired", expired=True),
            "a_haiku_only": extra_key(a, name="haiku", allowed_models=["claude-haiku-4-5"]),
            "a_cold": extra_key(a, name="cold"),
        }
