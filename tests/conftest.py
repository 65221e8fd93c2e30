"""A live gateway, a fake upstream and committed workspaces for the tests in tests/.

Module-scoped and on tenants of their own (sec-a, sec-b, sec-p with Privacy Mode), so they never
collide with proxy/tests' session fixtures in a full run, and work with --reuse-db: each module
adds a fresh cost center, project and proxy key to the (reused) tenants.
"""

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings

from conftest import PASSWORD, in_tenant
from proxy.fake_upstream.server import running_fake_upstream
from proxy.gateway import Gateway
from proxy.services import (
    anthropic_credential_set,
    cost_center_create,
    project_create,
    proxy_key_create,
)
from proxy.tests.gateway_support import Workspace
from tenants.models import Tenant
from tenants.services import tenant_create
from tokenscope.lib.asgi_server import serve_in_thread

SEC_ANTHROPIC_KEYS = {
    "a": "sk-ant-api03-SecSuiteTenantAKey-0123456789abcdefghijklmnopqrstuvwxyz01-SECA",
    "b": "sk-ant-api03-SecSuiteTenantBKey-0123456789abcdefghijklmnopqrstuvwxyz01-SECB",
    "p": "sk-ant-api03-SecSuiteTenantPKey-0123456789abcdefghijklmnopqrstuvwxyz01-SECP",
}


@dataclass
class LiveGateway:
    url: str
    fake: Any
    workspaces: dict[str, Workspace]


def sec_workspace(slug: str, anthropic_key: str, *, privacy_mode: bool = False) -> Workspace:
    tenant = Tenant.objects.filter(slug=slug).first() or tenant_create(
        name=slug.upper(),
        slug=slug,
        owner_email=f"owner@{slug}.example.com",
        owner_password=PASSWORD,
        owner_email_verified=True,
    )
    Tenant.objects.filter(pk=tenant.pk).update(privacy_mode=privacy_mode)
    tenant.refresh_from_db()
    suffix = secrets.token_hex(3).upper()
    with in_tenant(tenant):
        center = cost_center_create(None, tenant=tenant, code=f"S{suffix}", name=f"Sec {suffix}")
        project = project_create(
            None, tenant=tenant, name=f"Sec project {suffix}", default_cost_center=center
        )
        anthropic_credential_set(None, tenant=tenant, key=anthropic_key)
        row, raw = proxy_key_create(
            None, tenant=tenant, project=project, cost_center=center, name=f"sec {suffix}"
        )
    return Workspace(tenant, raw, project.pk, center.pk, row.pk)


@pytest.fixture(scope="module")
def sec_gateway(django_db_setup: None, django_db_blocker: Any) -> Iterator[LiveGateway]:
    """A live gateway forwarding to a fake upstream, and workspaces sec-a, sec-b, sec-p."""
    with django_db_blocker.unblock():
        workspaces = {
            "a": sec_workspace("sec-a", SEC_ANTHROPIC_KEYS["a"]),
            "b": sec_workspace("sec-b", SEC_ANTHROPIC_KEYS["b"]),
            "p": sec_workspace("sec-p", SEC_ANTHROPIC_KEYS["p"], privacy_mode=True),
        }
    previous = settings.ANTHROPIC_UPSTREAM_URL
    with running_fake_upstream() as fake:
        settings.ANTHROPIC_UPSTREAM_URL = fake.base_url
        try:
            with serve_in_thread(Gateway(), lifespan="on") as url:
                yield LiveGateway(url, fake, workspaces)
        finally:
            settings.ANTHROPIC_UPSTREAM_URL = previous
