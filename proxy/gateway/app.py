"""The Anthropic-compatible gateway: a raw ASGI app mounted at /v1/ in front of Django.

Hot path: resolve the key (in-process cache), read and check the body, forward with the
tenant's Anthropic key through one pooled client, relay the answer byte for byte (streams event
by event, unbuffered) while reading usage on the side, then queue exactly one usage record.
No database work happens on the event loop: cache misses run in worker threads, records are
written by a child process (proxy/gateway/records.py).
"""

import asyncio
import contextlib
import gc
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from aiohttp import ClientSession
from asgiref.sync import sync_to_async
from django.conf import settings
from django_tenants.utils import schema_context
from yarl import URL

from proxy.budgets.enforcer import BudgetEnforcer
from proxy.gateway.errors import (
    ProxyError,
    authentication_failed,
    invalid_request,
    new_request_id,
    not_found,
    permission_denied,
)
from proxy.gateway.exchange import Exchange
from proxy.gateway.keys import KeyResolver, ResolvedKey
from proxy.gateway.records import RecordWriter
from proxy.gateway.routes import Route, route_match
from proxy.sse import StreamUsageReader
from proxy.upstream import (
    UpstreamResponse,
    UpstreamTimeout,
    UpstreamTransportError,
    upstream_session,
)
from tokenscope.lib.net import is_trusted_proxy, resolve_client_ip

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# Never forwarded: our key, the client's network details, cookies, and encodings we must read.
DROPPED_REQUEST_HEADERS = HOP_BY_HOP | {
    "host",
    "content-length",
    "x-api-key",
    "authorization",
    "cookie",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "accept-encoding",
}
RELAYED_RESPONSE_HEADERS = frozenset(
    {
        b"content-type",
        b"request-id",
        b"retry-after",
        b"retry-after-ms",
        b"x-should-retry",
        b"anthropic-organization-id",
        b"anthropic-workspace-id",
        b"cache-control",
    }
)
RATELIMIT_PREFIX = b"anthropic-ratelimit-"
UPSTREAM_DROPPED_EVENT = (
    b'event: error\ndata: {"type":"error","error":{"type":"api_error",'
    b'"message":"The connection to Anthropic was lost mid-stream."}}\n\n'
)


class ClientGone(Exception):
    """The client went away before its request body arrived."""


def _headers(scope: Scope) -> list[tuple[str, str]]:
    return [
        (name.decode("latin-1").lower(), value.decode("latin-1"))
        for name, value in scope["headers"]
    ]


def _first(headers: list[tuple[str, str]], name: str) -> str:
    return next((value for key, value in headers if key == name), "")


def _client_key(headers: list[tuple[str, str]]) -> tuple[str, bool]:
    """The proxy key and whether it came as a Bearer token (SDK 2.x) rather than x-api-key."""
    key = _first(headers, "x-api-key").strip()
    if key:
        return key, False
    authorization = _first(headers, "authorization").strip()
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip(), True
    return "", False


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ProxyError(
                413,
                "request_too_large",
                f"Request body exceeds the {limit} byte limit.",
                retry=False,
            )
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _check_messages_body(body_bytes: bytes, route: Route) -> dict[str, Any]:
    try:
        body = json.loads(body_bytes)
    except (ValueError, RecursionError):  # also invalid UTF-8 and over-long integer literals
        raise invalid_request("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.")
    if route.name == "batches_create":
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            raise invalid_request("requests: a non-empty list of batch requests is required.")
        for item in requests:
            params = item.get("params") if isinstance(item, dict) else None
            if not isinstance(params, dict) or not isinstance(params.get("model"), str):
                raise invalid_request("Every batch request needs params with a model.")
        return body
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise invalid_request("model: field required.")
    return body


class Gateway:
    def __init__(self) -> None:
        self.keys = KeyResolver(settings.REDIS_URL)
        self.writer = RecordWriter()
        self.budgets = BudgetEnforcer(changed_at=self.keys.changed_at)
        self._session: ClientSession | None = None
        self._upstream_base = settings.ANTHROPIC_UPSTREAM_URL.rstrip("/")

    @property
    def session(self) -> ClientSession:
        if self._session is None:
            self._session = upstream_session()
        return self._session

    async def close(self) -> None:
        await self.keys.close()
        await self.writer.close()
        if self._session is not None:
            await self._session.close()
        await self.budgets.close()

    async def lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.writer.start()
                # What start-up loaded (Django, the app registry, price book, classifier) lives
                # for the whole process: out of the collector's sight, a full collection stops
                # the event loop for milliseconds instead of tens of them.
                gc.collect()
                gc.freeze()
                # Requests free what they allocate by reference counting; only the objects in
                # flight (32 requests, a batch of records) make the count climb past Python's
                # default 700, and each collection then stopped the loop 0.6-2 ms (gen 0/1) for
                # no garbage. Collect when 50,000 objects more are alive instead (a few MB of
                # cycles at most, docs/performance.md).
                gc.set_threshold(50_000, 20, 20)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(scope, receive, send)
            return
        headers = _headers(scope)
        route = route_match(scope["method"], scope["path"])
        ex: Exchange | None = None
        try:
            if route is None:
                raise not_found(f"Not found: {scope['method']} {scope['path']}")
            raw_key, bearer = _client_key(headers)
            key = await self.keys.resolve(raw_key) if raw_key else None
            if key is None or not self._host_allows(headers, key):
                raise authentication_failed()
            client = scope.get("client") or (None, None)
            ex = Exchange(
                route=route,
                endpoint=f"{scope['method']} {scope['path']}",
                ip_address=resolve_client_ip(client[0], _first(headers, "x-forwarded-for")),
                user_agent=_first(headers, "user-agent"),
                key=key,
            )
            forward_headers = await self._admit(ex, key, route, headers, bearer, receive)
            await self._forward(ex, scope, headers, forward_headers, receive, send)
        except ProxyError as error:
            request_id = ex.request_id if ex else new_request_id()
            if ex is not None:
                ex.status_code = error.status
                ex.error_type = error.error_type
            await self._send_error(send, error, request_id, ex)
        except ClientGone:
            if ex is not None:
                ex.status_code = 499
                ex.error_type = "client_disconnected"
                ex.client_disconnected = True
        finally:
            if ex is not None:
                ex.finished = time.perf_counter()
                ex.body_bytes = b""
                self.writer.submit(ex)

    def _host_allows(self, headers: list[tuple[str, str]], key: ResolvedKey) -> bool:
        """On a tenant's own host only that tenant's keys work; the API host takes every key."""
        host = _first(headers, "host").split(":", 1)[0].lower()
        base = settings.BASE_DOMAIN
        if host == base or not host.endswith("." + base):
            return True
        return host[: -len(base) - 1] == key.tenant.slug

    async def _admit(
        self,
        ex: Exchange,
        key: ResolvedKey,
        route: Route,
        headers: list[tuple[str, str]],
        bearer: bool,
        receive: Receive,
    ) -> list[tuple[str, str]]:
        """Every check before forwarding; returns the headers to forward, raises ProxyError
        to refuse."""
        if key.tenant.region != settings.REGION:
            raise permission_denied(
                "This workspace's data lives in another region; use that region's API host."
            )
        if key.tenant.status != "active":
            raise permission_denied("This TokenScope workspace is suspended.")
        limit = (
            settings.PROXY_MAX_BATCH_BODY_BYTES
            if route.name == "batches_create"
            else settings.PROXY_MAX_BODY_BYTES
        )
        declared = _first(headers, "content-length")
        if declared.isdigit() and int(declared) > limit:
            raise ProxyError(
                413,
                "request_too_large",
                f"Request body exceeds the {limit} byte limit.",
                retry=False,
            )
        ex.body_bytes = await _read_body(receive, limit)
        if route.has_json_body:
            ex.body = _check_messages_body(ex.body_bytes, route)
            ex.is_stream = ex.body.get("stream") is True
            models = (
                [item["params"]["model"] for item in ex.body["requests"]]
                if route.name == "batches_create"
                else [ex.body["model"]]
            )
            ex.model = models[0]
            for model in models:
                if not key.allows_model(model):
                    raise permission_denied(f"This key may not use the model {model!r}.")
        if route.model_id is not None:
            ex.model = route.model_id
            if not key.allows_model(route.model_id):
                raise not_found(f"model: {route.model_id}")
        if key.anthropic_key is None:
            raise permission_denied(
                "No Anthropic API key is configured for this workspace or project."
            )
        if route.batch_id is not None:
            ex.batch_id = route.batch_id
            owned = await sync_to_async(_batch_owned, thread_sensitive=False)(
                key.tenant.schema_name, route.batch_id
            )
            if not owned:
                raise not_found(f"message batch: {route.batch_id}")
        forward_headers = self._upstream_headers(headers, key, bearer)
        # Budgets, plan allowance and rate limits: reserve the worst case or refuse (last check).
        await self.budgets.reserve(ex, key)
        return forward_headers

    def _upstream_headers(
        self, headers: list[tuple[str, str]], key: ResolvedKey, bearer: bool
    ) -> list[tuple[str, str]]:
        """The client's headers as upstream gets them: ours and hop-by-hop ones dropped, the
        tenant's Anthropic key added. Values travel byte for byte, which the HTTP client does
        for UTF-8 (it writes str values as UTF-8): other bytes are refused, not altered."""
        forwarded = []
        for name, value in headers:
            if name in DROPPED_REQUEST_HEADERS or name.startswith("x-tokenscope-"):
                continue
            try:
                forwarded.append((name, value.encode("latin-1").decode("utf-8")))
            except UnicodeDecodeError:
                raise invalid_request(f"The {name} header is not valid UTF-8.") from None
        assert key.anthropic_key is not None
        if bearer:
            forwarded.append(("authorization", f"Bearer {key.anthropic_key}"))
        else:
            forwarded.append(("x-api-key", key.anthropic_key))
        forwarded.append(("accept-encoding", "identity"))
        return forwarded

    async def _forward(
        self,
        ex: Exchange,
        scope: Scope,
        headers: list[tuple[str, str]],
        forward_headers: list[tuple[str, str]],
        receive: Receive,
        send: Send,
    ) -> None:
        query = scope.get("query_string", b"").decode("latin-1")
        # The path matched a route (plain ASCII); the query goes on exactly as the client sent it.
        url = URL(
            self._upstream_base + scope["path"] + (f"?{query}" if query else ""), encoded=True
        )
        task = asyncio.current_task()
        assert task is not None
        watcher = asyncio.create_task(self._watch_disconnect(receive, ex, task))
        response: UpstreamResponse | None = None
        try:
            ex.upstream_started = time.perf_counter()
            try:
                response = await self.session.request(
                    scope["method"],
                    url,
                    headers=forward_headers,
                    data=ex.body_bytes,
                    allow_redirects=False,
                )
            except UpstreamTimeout:
                raise ProxyError(
                    504, "timeout_error", "Anthropic did not answer in time."
                ) from None
            except UpstreamTransportError:
                raise ProxyError(502, "api_error", "Could not reach Anthropic.") from None
            ex.upstream_headers_at = time.perf_counter()
            ex.status_code = response.status
            ex.upstream_request_id = response.headers.get("request-id", "")
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                await self._relay_stream(ex, response, watcher, send)
            elif ex.route.name == "batches_results":
                await self._relay_raw(ex, response, watcher, send)
            else:
                await self._relay_body(ex, scope, headers, response, watcher, send)
        except asyncio.CancelledError:
            if not ex.client_disconnected:
                raise
            task.uncancel()
            if ex.status_code == 0 or ex.first_byte_sent is None:
                ex.status_code = 499
            ex.error_type = ex.error_type or "client_disconnected"
        finally:
            watcher.cancel()
            if response is not None:
                response.release()  # back to the pool only if read to the end, else closed
            if ex.upstream_finished is None:
                ex.upstream_finished = time.perf_counter()

    async def _watch_disconnect(
        self, receive: Receive, ex: Exchange, task: asyncio.Task[Any]
    ) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                ex.client_disconnected = True
                task.cancel()
                return

    def _response_headers(
        self, ex: Exchange, response: UpstreamResponse
    ) -> list[tuple[bytes, bytes]]:
        relayed = []
        for name, value in response.raw_headers:
            lower = name.lower()
            if lower in RELAYED_RESPONSE_HEADERS or lower.startswith(RATELIMIT_PREFIX):
                relayed.append((lower, value))
        ex.overhead_ms = ex.overhead_so_far_ms()
        relayed.append((b"x-tokenscope-request-id", str(ex.record_id).encode()))
        relayed.append((b"x-tokenscope-overhead-ms", f"{ex.overhead_ms:.3f}".encode()))
        return relayed

    async def _relay_stream(
        self, ex: Exchange, response: UpstreamResponse, watcher: asyncio.Task[None], send: Send
    ) -> None:
        reader = StreamUsageReader()
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": self._response_headers(ex, response),
            }
        )
        ex.first_byte_sent = time.perf_counter()
        dropped = False
        try:
            async for chunk in response.content.iter_any():
                reader.feed(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except (UpstreamTransportError, UpstreamTimeout):
            dropped = True
        finally:
            # Also when the client left mid-stream: bill what upstream reported so far.
            ex.upstream_finished = time.perf_counter()
            ex.usage = reader.usage
            ex.model = reader.model or ex.model
            ex.stop_reason = reader.stop_reason or ""
        if reader.error is not None:
            ex.error_type = reader.error[0]
        elif dropped or not reader.saw_message_stop:
            ex.error_type = "upstream_dropped"
            await send(
                {"type": "http.response.body", "body": UPSTREAM_DROPPED_EVENT, "more_body": True}
            )
        watcher.cancel()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _relay_raw(
        self, ex: Exchange, response: UpstreamResponse, watcher: asyncio.Task[None], send: Send
    ) -> None:
        """Pass a large body (batch results) through chunk by chunk, unread."""
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": self._response_headers(ex, response),
            }
        )
        ex.first_byte_sent = time.perf_counter()
        try:
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except (UpstreamTransportError, UpstreamTimeout):
            ex.error_type = "upstream_dropped"
        finally:
            ex.upstream_finished = time.perf_counter()
        watcher.cancel()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _relay_body(
        self,
        ex: Exchange,
        scope: Scope,
        headers: list[tuple[str, str]],
        response: UpstreamResponse,
        watcher: asyncio.Task[None],
        send: Send,
    ) -> None:
        try:
            content = await response.read()
        except UpstreamTimeout:
            raise ProxyError(504, "timeout_error", "Anthropic did not answer in time.") from None
        except UpstreamTransportError:
            raise ProxyError(502, "api_error", "The connection to Anthropic was lost.") from None
        ex.upstream_finished = time.perf_counter()
        if ex.route.name == "batches_list" and response.status == 200 and ex.key is not None:
            ex.owned_batches = await sync_to_async(_batches_owned, thread_sensitive=False)(
                ex.key.tenant.schema_name, content
            )
        content = self._inspect_body(ex, scope, headers, response.status, content)
        if ex.route.name == "batches_create" and ex.batch_id and ex.key is not None:
            await sync_to_async(_batch_register, thread_sensitive=False)(ex)
        response_headers = self._response_headers(ex, response)
        response_headers.append((b"content-length", str(len(content)).encode()))
        watcher.cancel()
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": response_headers,
            }
        )
        ex.first_byte_sent = time.perf_counter()
        await send({"type": "http.response.body", "body": content, "more_body": False})

    def _inspect_body(
        self,
        ex: Exchange,
        scope: Scope,
        headers: list[tuple[str, str]],
        status: int,
        content: bytes,
    ) -> bytes:
        """Read usage from a JSON answer and return the bytes to send (rewritten if needed)."""
        try:
            payload = json.loads(content)
        except (ValueError, RecursionError):  # relayed as it is, only not inspected
            return content
        if not isinstance(payload, dict):
            return content
        if status >= 400:
            error = payload.get("error")
            if isinstance(error, dict):
                ex.error_type = str(error.get("type") or "")
            return content
        route = ex.route
        if route.name == "messages":
            ex.usage = payload.get("usage") or {}
            ex.model = payload.get("model") or ex.model
            ex.stop_reason = payload.get("stop_reason") or ""
        elif route.name == "count_tokens":
            ex.usage = {"input_tokens": payload.get("input_tokens", 0)}
        elif route.kind == "batch":
            return self._rewrite_batches(ex, scope, headers, payload)
        elif route.name == "models_list" and ex.key is not None and ex.key.allowed_models:
            data = [m for m in payload.get("data", []) if ex.key.allows_model(str(m.get("id")))]
            payload.update(
                data=data,
                first_id=data[0]["id"] if data else None,
                last_id=data[-1]["id"] if data else None,
            )
            return json.dumps(payload).encode()
        return content

    def _rewrite_batches(
        self,
        ex: Exchange,
        scope: Scope,
        headers: list[tuple[str, str]],
        payload: dict[str, Any],
    ) -> bytes:
        """Point results_url at us: the SDK fetches it as given, bypassing base_url."""
        forwarded_proto = _first(headers, "x-forwarded-proto")
        peer = (scope.get("client") or (None, None))[0]
        trusted = is_trusted_proxy(peer)
        scheme = forwarded_proto if forwarded_proto and trusted else scope.get("scheme", "http")
        base = f"{scheme}://{_first(headers, 'host')}"
        if ex.route.name == "batches_list":
            # Only batches made through this workspace's keys; the cursors stay upstream's.
            owned = ex.owned_batches or set()
            payload["data"] = [
                b for b in payload.get("data") or [] if isinstance(b, dict) and b.get("id") in owned
            ]
        batches = payload.get("data") if ex.route.name == "batches_list" else [payload]
        for batch in batches or []:
            if isinstance(batch, dict) and batch.get("id") and batch.get("results_url"):
                batch["results_url"] = f"{base}/v1/messages/batches/{batch['id']}/results"
        if ex.route.name == "batches_create":
            ex.batch_id = str(payload.get("id") or "")
        return json.dumps(payload).encode()

    async def _send_error(
        self, send: Send, error: ProxyError, request_id: str, ex: Exchange | None
    ) -> None:
        body = error.body(request_id)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"request-id", request_id.encode()),
            (b"x-should-retry", b"true" if error.retry else b"false"),
        ]
        headers += [(name.encode(), value.encode()) for name, value in error.headers.items()]
        if ex is not None:
            ex.overhead_ms = ex.overhead_so_far_ms()
            headers.append((b"x-tokenscope-request-id", str(ex.record_id).encode()))
        with contextlib.suppress(OSError, RuntimeError):
            await send({"type": "http.response.start", "status": error.status, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})


def _batch_owned(schema: str, batch_id: str) -> bool:
    from proxy.batches import batch_is_owned

    with schema_context(schema):
        return batch_is_owned(batch_id)


def _batch_register(ex: Exchange) -> None:
    from proxy.batches import batch_register

    assert ex.key is not None
    assert ex.body is not None
    with schema_context(ex.key.tenant.schema_name):
        batch_register(
            ex.batch_id,
            proxy_key_id=ex.key.id,
            project_id=ex.key.project_id,
            cost_center_id=ex.key.cost_center_id,
            key_owner_id=ex.key.owner_id,
            request_count=len(ex.body.get("requests") or []),
            created_at=ex.created_at,
        )


def _batches_owned(schema: str, content: bytes) -> set[str]:
    """Which batches of an upstream list page this tenant made through the proxy."""
    from proxy.batch_models import ProxyBatch

    try:
        listed = [b.get("id") for b in json.loads(content).get("data") or [] if isinstance(b, dict)]
    except (ValueError, RecursionError, AttributeError):
        return set()
    with schema_context(schema):
        return set(
            ProxyBatch.objects.filter(pk__in=[i for i in listed if i]).values_list("pk", flat=True)
        )
