"""Shared set-up for gateway tests: a fake upstream, a live gateway, and committed workspaces.

The gateway writes records from worker threads, so what it reads (keys, credentials) is
committed once per session and tests find their records by the id the gateway returns.
"""

import socket
import time
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from django.utils import timezone
from django_tenants.utils import schema_context

from audit.models import UsageRecord
from proxy.services import (
    anthropic_credential_set,
    cost_center_create,
    project_create,
    proxy_key_create,
    proxy_key_revoke,
)
from tenants.models import Tenant

ANTHROPIC_KEY_A = "sk-ant-api03-TenantAsRealAnthropicKey-0123456789abcdefghijklmnopqrstuvwxyz-AAAA"
ANTHROPIC_KEY_B = "sk-ant-api03-TenantBsRealAnthropicKey-0123456789abcdefghijklmnopqrstuvwxyz-BBBB"
ANTHROPIC_KEY_P = "sk-ant-api03-TenantPsRealAnthropicKey-0123456789abcdefghijklmnopqrstuvwxyz-PPPP"
PURPOSE = "Answer customer support tickets about our billing product."


@dataclass
class Workspace:
    tenant: Tenant
    key: str
    project_id: int
    cost_center_id: int
    key_id: object


def workspace_create(tenant: Tenant, anthropic_key: str, **key_options: object) -> Workspace:
    """A cost center, a project, the tenant's Anthropic key and one proxy key (committed)."""
    with schema_context(tenant.schema_name):
        center = cost_center_create(None, tenant=tenant, code="ENG", name="Engineering")
        project = project_create(
            None, tenant=tenant, name="Support Bot", purpose=PURPOSE, default_cost_center=center
        )
        anthropic_credential_set(None, tenant=tenant, key=anthropic_key)
        row, raw = proxy_key_create(
            None, tenant=tenant, project=project, cost_center=center, name="main", **key_options
        )
    return Workspace(tenant, raw, project.pk, center.pk, row.pk)


def extra_key(
    ws: Workspace, *, revoked: bool = False, expired: bool = False, **options: object
) -> str:
    from proxy.models import CostCenter, Project, ProxyKey

    with schema_context(ws.tenant.schema_name):
        row, raw = proxy_key_create(
            None,
            tenant=ws.tenant,
            project=Project.objects.get(pk=ws.project_id),
            cost_center=CostCenter.objects.get(pk=ws.cost_center_id),
            **options,
        )
        if revoked:
            proxy_key_revoke(None, tenant=ws.tenant, proxy_key=row)
        if expired:
            # Keys can only be made with a future expiry; let that moment pass.
            ProxyKey.objects.filter(pk=row.pk).update(
                expires_at=timezone.now() - timedelta(minutes=1)
            )
    return raw


def wait_record(tenant: Tenant, record_id: str, timeout: float = 10.0) -> UsageRecord:
    """The usage record the gateway wrote for a call (it is written a moment after the reply)."""
    deadline = time.monotonic() + timeout
    while True:
        with schema_context(tenant.schema_name):
            record = UsageRecord.objects.filter(pk=record_id).first()
        if record is not None:
            return record
        if time.monotonic() > deadline:
            raise AssertionError(f"no usage record {record_id} in {tenant.schema_name}")
        time.sleep(0.02)


def record_count(tenant: Tenant) -> int:
    with schema_context(tenant.schema_name):
        return UsageRecord.objects.count()


def raw_exchange(url: str, request: bytes) -> bytes:
    """Send bytes as they are to a live server and return all it answers until it closes."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)
