"""Talking to Anthropic: the proxy's pooled async session, and sync calls for key checks and
batch results (Celery tasks, management commands)."""

import json
import logging
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from tokenscope.lib.errors import DomainError

logger = logging.getLogger(__name__)

ANTHROPIC_VERSION = "2023-06-01"


class AnthropicKeyRejected(DomainError):
    """Anthropic answered 401/403: the key is wrong, revoked or lacks permission."""

    code = "anthropic_key_rejected"


class AnthropicUnreachable(DomainError):
    """Anthropic could not be reached, or answered with an unexpected status."""

    code = "anthropic_unreachable"


@sensitive_variables("key", "headers")
def anthropic_key_verify(key: str, *, timeout: float = 10.0) -> None:
    """Call GET /v1/models with the key; raise a DomainError unless Anthropic accepts it."""
    url = settings.ANTHROPIC_UPSTREAM_URL.rstrip("/") + "/v1/models"
    headers = {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION}
    try:
        response = httpx.get(url, headers=headers, params={"limit": 1}, timeout=timeout)
    except httpx.HTTPError as exc:
        # The exception text names only the URL; the key travels in a header.
        logger.warning("Anthropic key check could not reach upstream: %s", type(exc).__name__)
        raise AnthropicUnreachable(
            "Could not reach Anthropic to verify the key. Save it without verifying, or retry."
        ) from None
    if response.status_code in (401, 403):
        raise AnthropicKeyRejected(
            "Anthropic rejected this key (authentication failed). Check that it is an active "
            "API key of your Anthropic organization.",
            field="key",
        )
    if response.status_code != 200:
        logger.warning("Anthropic key check got HTTP %s", response.status_code)
        raise AnthropicUnreachable(
            f"Anthropic answered HTTP {response.status_code} while verifying the key; retry later."
        )


def upstream_session() -> aiohttp.ClientSession:
    """The pooled async session the proxy forwards with (one per gateway, per process).

    aiohttp rather than httpx on the hot path: on this machine it costs ~75 µs of CPU per
    forwarded request against ~2 ms for httpx's async client (docs/performance.md). The gateway
    gives it absolute URLs (ANTHROPIC_UPSTREAM_URL + the client's path and query, unchanged).
    Nothing is added to what the client sent (no User-Agent, Accept or encodings of
    its own), nothing is decompressed, and no cookie is ever kept: one session serves every
    tenant, so a cookie upstream sets for one must never travel with another's request.
    """
    timeout = aiohttp.ClientTimeout(
        total=None,
        connect=settings.UPSTREAM_CONNECT_TIMEOUT,  # waiting for a pooled connection included
        sock_connect=settings.UPSTREAM_CONNECT_TIMEOUT,
        sock_read=settings.UPSTREAM_READ_TIMEOUT,
    )
    connector = aiohttp.TCPConnector(
        limit=settings.UPSTREAM_MAX_CONNECTIONS,
        keepalive_timeout=15,
        ttl_dns_cache=60,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        trust_env=False,
    )


# What the gateway catches, named here so no other module imports the HTTP client. Timeouts
# first: aiohttp's read and connect timeouts are also ClientErrors.
UpstreamTimeout = TimeoutError
UpstreamTransportError = aiohttp.ClientError
UpstreamResponse = aiohttp.ClientResponse


def _sync_client() -> httpx.Client:
    return httpx.Client(
        base_url=settings.ANTHROPIC_UPSTREAM_URL.rstrip("/"),
        timeout=httpx.Timeout(
            settings.UPSTREAM_READ_TIMEOUT, connect=settings.UPSTREAM_CONNECT_TIMEOUT
        ),
        trust_env=False,
    )


def _batch_headers(key: str) -> dict[str, str]:
    return {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION}


def batch_retrieve(key: str, batch_id: str) -> dict[str, Any]:
    """GET a message batch from Anthropic with the tenant's key."""
    with _sync_client() as client:
        response = client.get(f"/v1/messages/batches/{batch_id}", headers=_batch_headers(key))
    response.raise_for_status()
    batch: dict[str, Any] = response.json()
    return batch


def batch_results(key: str, batch_id: str) -> Iterator[dict[str, Any]]:
    """Stream a finished batch's JSONL results, one parsed line at a time."""
    with (
        _sync_client() as client,
        client.stream(
            "GET", f"/v1/messages/batches/{batch_id}/results", headers=_batch_headers(key)
        ) as response,
    ):
        response.raise_for_status()
        for line in response.iter_lines():
            if line.strip():
                yield json.loads(line)


UpstreamHTTPError = httpx.HTTPError
