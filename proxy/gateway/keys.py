"""Resolving a proxy key to its tenant, attribution and Anthropic key, with in-process caches.

A resolved key is cached per process; a change notice on Redis pub/sub (published after every
change to keys, credentials, projects, cost centers, tenant settings or status) invalidates it.
The decrypted Anthropic key lives only in this process's memory, never in Redis.
"""

import asyncio
import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone
from django_tenants.utils import schema_context

from proxy.alerts import key_vault_unreachable_notice
from proxy.custody import KeyCustodyUnavailable, anthropic_key_plaintext
from proxy.gateway.errors import ProxyError
from proxy.models import proxy_key_tenant_short_id
from proxy.services import CONFIG_CHANGED_CHANNEL

logger = logging.getLogger(__name__)

# Fire-and-forget tasks are kept referenced until done (asyncio holds only weak references).
_background: set[asyncio.Task[None]] = set()


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


@dataclass(frozen=True)
class _Cached:
    resolved: ResolvedKey
    loaded_at: float  # monotonic time when the database read started


class KeyResolver:
    """Resolves proxy keys from an in-process cache that config changes invalidate at once.

    Every committed change to a tenant's keys, credentials, projects, cost centers, settings or
    status publishes the tenant's short id on CONFIG_CHANGED_CHANNEL; a listener task drops what
    was read before it. No Redis call on the request path. While the listener is not connected,
    cached entries are trusted for NOT_LISTENING_SECONDS only.
    """

    NOT_LISTENING_SECONDS = 2.0

    def __init__(self, redis_url: str) -> None:
        self._redis_url = redis_url
        self._cache: dict[str, _Cached] = {}
        self._changed_at: dict[str, float] = {}
        self._listening_since: float | None = None
        self._listener: asyncio.Task[None] | None = None
        self._locks: dict[str, asyncio.Lock] = {}

    def _listen_in_background(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        # Its own connection: a subscribed connection waits for messages without a timeout.
        client = aioredis.Redis.from_url(self._redis_url, health_check_interval=30)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(CONFIG_CHANGED_CHANNEL)
            self._listening_since = time.monotonic()
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    self._changed_at[message["data"].decode()] = time.monotonic()
        except Exception as exc:
            logger.warning("config change listener stopped: %s", type(exc).__name__)
            await asyncio.sleep(1.0)  # the next request starts a new listener
        finally:
            self._listening_since = None
            with contextlib.suppress(Exception):
                await pubsub.aclose()
                await client.aclose()

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()

    def changed_at(self, short_id: str) -> float:
        """When (time.monotonic) this process last heard that the tenant's settings changed."""
        return self._changed_at.get(short_id, float("-inf"))

    def _fresh(self, cached: _Cached, short_id: str, now: float) -> bool:
        if cached.loaded_at <= self._changed_at.get(short_id, float("-inf")):
            return False
        age = now - cached.loaded_at
        listening_since = self._listening_since
        if listening_since is not None and cached.loaded_at >= listening_since:
            return age < settings.PROXY_KEY_CACHE_SECONDS
        return age < self.NOT_LISTENING_SECONDS

    async def resolve(self, raw_key: str) -> ResolvedKey | None:
        # Bounded length: the key is hashed and may reach a database lookup.
        short_id = proxy_key_tenant_short_id(raw_key) if len(raw_key) <= 200 else None
        if short_id is None:
            return None
        self._listen_in_background()
        digest = hashlib.sha256(raw_key.encode()).hexdigest()
        cached = self._cache.get(digest)
        if cached is not None and self._fresh(cached, short_id, time.monotonic()):
            resolved: ResolvedKey | None = cached.resolved
        else:
            lock = self._locks.setdefault(digest, asyncio.Lock())
            async with lock:
                cached = self._cache.get(digest)
                if cached is not None and self._fresh(cached, short_id, time.monotonic()):
                    resolved = cached.resolved
                else:
                    resolved = await self._reload(raw_key, short_id, digest)
            self._locks.pop(digest, None)
        if resolved is not None and resolved.expires_at and resolved.expires_at <= timezone.now():
            return None
        return resolved

    async def _reload(self, raw_key: str, short_id: str, digest: str) -> ResolvedKey | None:
        started = time.monotonic()
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
        self._cache[digest] = _Cached(resolved, started)
        return resolved
