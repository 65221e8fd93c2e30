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
    with serve_in_thread(Gateway(), lifespan="on") as url:
        yield url
    settings.ANTHROPIC_UPSTREAM_URL = previous


def _tenant(slug: str, *, privacy_mode: bool = False) -> Tenant:
    tenant = Tenant.objects.filter(slug=slug).first() or tenant_create(
        name=slug.upper(),
        slug=slug,
        owner_email=f"owner@{slug}.example.com",
        owner_password=PASSWORD,
        owner_email_verified=True,
    )
    if privacy_mode:
        Tenant.objects.filter(pk=tenant.pk).update(privacy_mode=True)
        tenant.refresh_from_db()
    return tenant


@pytest.fixture(scope="session")
def workspaces(django_db_setup, django_db_blocker):
    """Committed workspaces of tenants of their own (the gateway reads them from other threads):
    gw-a (keys of every kind), gw-b, gw-p (Privacy Mode on) and gw-s (for outage tests)."""
    with django_db_blocker.unblock():
        a = workspace_create(_tenant("gw-a"), ANTHROPIC_KEY_A)
        return {
            "a": a,
            "b": workspace_create(_tenant("gw-b"), ANTHROPIC_KEY_B),
            "p": workspace_create(_tenant("gw-p", privacy_mode=True), ANTHROPIC_KEY_P),
            "s": workspace_create(_tenant("gw-s"), ANTHROPIC_KEY_A),
            "a_revoked": extra_key(a, revoked=True, name="revoked"),
            "a_expired": extra_key(a, name="expired", expired=True),
            "a_haiku_only": extra_key(a, name="haiku", allowed_models=["claude-haiku-4-5"]),
            "a_cold": extra_key(a, name="cold"),
        }


@pytest.fixture(scope="session")
def operator(django_db_setup, django_db_blocker):
    """A committed staff user of the public schema (operators get platform alerts)."""
    from django_tenants.utils import schema_context

    from accounts.models import User

    with django_db_blocker.unblock(), schema_context("public"):
        user, _ = User.objects.get_or_create(email="ops@aitokenscope.example.com", is_staff=True)
    return user
