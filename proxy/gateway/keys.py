"""Resolving a proxy key to its tenant, attribution and Anthropic key, with in-process caches.

A resolved key is cached per process; the tenant's config generation in Redis (bumped after
every change to keys, credentials, projects or cost centers, and on suspension) invalidates it.
The decrypted Anthropic key lives only in this process's memory, never in Redis.
"""

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone
from django_tenants.utils import schema_context

from proxy.alerts import key_vault_unreachable_notice
from proxy.custody import KeyCustodyUnavailable, anthropic_key_plaintext
from proxy.gateway.errors import ProxyError

logger = logging.getLogger(__name__)

# Fire-and-forget tasks are kept referenced until done (asyncio holds only weak references).
_background: set[asyncio.Task[None]] = set()

KEY_PREFIX = "tsk_"


@dataclass(frozen=True)
class TenantInfo:
    id: int
    short_id: str
    slug: str
    schema_name: str
    status: str
    region: str
    privacy_mode: bool
    time_zone: str


@dataclass(frozen=True)
class ResolvedKey:
    id: Any
    tenant: TenantInfo
    project_id: int
    project_purpose: str
    cost_center_id: int
    owner_id: int | None
    allowed_models: tuple[str, ...]
    expires_at: datetime | None
    rpm_limit: int | None
    input_tpm_limit: int | None
    output_tpm_limit: int | None
    # None when the workspace has no Anthropic key for this project.
    anthropic_key: str | None

    def allows_model(self, model: str) -> bool:
        """Allowed models match exactly or as the alias of a dated id (name-YYYYMMDD)."""
        if not self.allowed_models:
            return True
        return any(
            model == allowed
            or (model.startswith(allowed + "-") and model[len(allowed) + 1 :].isdigit())
            for allowed in self.allowed_models
        )


def key_tenant_short_id(raw_key: str) -> str | None:
    if not raw_key.startswith(KEY_PREFIX):
        return None
    short_id, sep, secret = raw_key[len(KEY_PREFIX) :].partition("_")
    if not sep or not short_id or not secret or len(raw_key) > 200:
        return None
    return short_id


def _load(raw_key: str, short_id: str) -> ResolvedKey | None:
    """Read the key, its tenant and its Anthropic key from the database (runs in a thread)."""
    from proxy.selectors import anthropic_credential_for, proxy_key_for_secret
    from tenants.models import Tenant

    close_old_connections()
    tenant = Tenant.objects.filter(short_id=short_id).first()
    if tenant is None:
        return None
    with schema_context(tenant.schema_name):
        key = proxy_key_for_secret(raw_key)
        if key is None:
            return None
        credential = anthropic_credential_for(key.project_id)
        plaintext = anthropic_key_plaintext(credential, tenant=tenant) if credential else None
    return ResolvedKey(
        id=key.pk,
        tenant=TenantInfo(
            id=tenant.pk,
            short_id=tenant.short_id,
            slug=tenant.slug,
            schema_name=tenant.schema_name,
            status=tenant.status,
            region=tenant.region,
            privacy_mode=tenant.privacy_mode,
            time_zone=tenant.time_zone,
        ),
        project_id=key.project_id,
        project_purpose=key.project.purpose,
        cost_center_id=key.cost_center_id,
        owner_id=key.owner_id,
        allowed_models=tuple(key.allowed_models or ()),
        expires_at=key.expires_at,
        rpm_limit=key.rpm_limit,
        input_tpm_limit=key.input_tpm_limit,
        output_tpm_limit=key.output_tpm_limit,
        anthropic_key=plaintext,
    )


class KeyResolver:
    def __init__(self, redis: Any) -> None:
        self._redis = redis
        self._cache: dict[str, tuple[ResolvedKey, bytes | None, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def _generation(self, short_id: str) -> bytes | None:
        try:
            value: bytes | None = await self._redis.get(f"ts:config-gen:{short_id}")
        except Exception:
            return b"?"
        return value

    async def resolve(self, raw_key: str) -> ResolvedKey | None:
        short_id = key_tenant_short_id(raw_key)
        if short_id is None:
            return None
        digest = hashlib.sha256(raw_key.encode()).hexdigest()
        generation = await self._generation(short_id)
        now = time.monotonic()
        cached = self._cache.get(digest)
        # With Redis unreachable ("?") a cached entry is trusted for a few seconds only.
        max_age = 5.0 if generation == b"?" else settings.PROXY_KEY_CACHE_SECONDS
        if cached and (cached[1] == generation or generation == b"?") and now - cached[2] < max_age:
            resolved: ResolvedKey | None = cached[0]
        else:
            lock = self._locks.setdefault(digest, asyncio.Lock())
            async with lock:
                cached = self._cache.get(digest)
                if cached and cached[1] == generation and time.monotonic() - cached[2] < max_age:
                    resolved = cached[0]
                else:
                    resolved = await self._reload(raw_key, short_id, digest, generation)
            self._locks.pop(digest, None)
        if resolved is not None and resolved.expires_at and resolved.expires_at <= timezone.now():
            return None
        return resolved

    async def _reload(
        self, raw_key: str, short_id: str, digest: str, generation: bytes | None
    ) -> ResolvedKey | None:
        try:
            resolved = await sync_to_async(_load, thread_sensitive=False)(raw_key, short_id)
        except KeyCustodyUnavailable as exc:
            logger.warning("key custody unavailable for tenant %s", short_id)
            notice = sync_to_async(key_vault_unreachable_notice, thread_sensitive=False)
            task = asyncio.create_task(notice(short_id))
            _background.add(task)
            task.add_done_callback(_background.discard)
            raise ProxyError(
                503,
                "api_error",
                "The key vault holding this workspace's Anthropic key is unreachable; retry.",
                retry=True,
            ) from exc
        except Exception as exc:
            logger.exception("proxy key lookup failed for tenant %s", short_id)
            raise ProxyError(
                503, "api_error", "TokenScope could not check this key; retry shortly.", retry=True
            ) from exc
        if resolved is None:
            self._cache.pop(digest, None)
            return None
        if len(self._cache) > 50_000:
            self._cache.clear()
        self._cache[digest] = (resolved, generation, time.monotonic())
        return resolved
