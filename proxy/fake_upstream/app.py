"""A fake Anthropic API as a raw ASGI app: messages (JSON and SSE), count_tokens, models, batches.

Deterministic token counts, behaviour controlled by a `[[fake:{JSON}]]` directive inside the
request text, and an in-memory log of recent requests. See docs/fake-upstream.md.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

__all__ = ["FakeUpstream", "create_app", "input_tokens_for", "output_tokens_for"]

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DIRECTIVE = re.compile(r"\[\[fake:(\{.*?\})\]\]", re.DOTALL)
INVALID_KEY_PREFIX = "sk-ant-api03-invalid"
WORDS = ("Hello", " from", " the", " fake", " upstream", ".", " It", " streams", " text", "!")
THINKING = ("Let me think", " about this", " carefully.")
SIGNATURE = base64.b64encode(b"fake-upstream-signature-not-a-real-one").decode()
DEFAULT_TEXT_CHUNKS = 3
ERROR_STATUS = {"500": 500, "529": 529, "429": 429}
ERROR_TYPE = {
    400: ("invalid_request_error", "false"),
    401: ("authentication_error", "false"),
    404: ("not_found_error", "false"),
    429: ("rate_limit_error", "true"),
    500: ("api_error", "true"),
    529: ("overloaded_error", "true"),
}
JSON = b"application/json"
SSE = b"text/event-stream; charset=utf-8"

# Models the SDK enum lists (reference §5.1), newest first: (id, display name, created, window).
MODELS: tuple[tuple[str, str, str, int], ...] = (
    ("claude-fable-5-2", "Claude Fable 5.2", "2026-11-09T00:00:00Z", 1_000_000),
    ("claude-mythos-5-2", "Claude Mythos 5.2", "2026-11-09T00:00:00Z", 1_000_000),
    ("claude-haiku-5-5", "Claude Haiku 5.5", "2026-10-01T00:00:00Z", 1_000_000),
    ("claude-sonnet-5-5", "Claude Sonnet 5.5", "2026-09-15T00:00:00Z", 1_000_000),
    ("claude-fable-5-1", "Claude Fable 5.1", "2026-09-01T00:00:00Z", 1_000_000),
    ("claude-opus-5-5", "Claude Opus 5.5", "2026-08-20T00:00:00Z", 1_000_000),
    ("claude-mythos-5-1", "Claude Mythos 5.1", "2026-08-01T00:00:00Z", 1_000_000),
    ("claude-sonnet-5", "Claude Sonnet 5", "2026-07-01T00:00:00Z", 1_000_000),
    ("claude-fable-5", "Claude Fable 5", "2026-06-15T00:00:00Z", 1_000_000),
    ("claude-mythos-5", "Claude Mythos 5", "2026-06-15T00:00:00Z", 1_000_000),
    ("claude-opus-5", "Claude Opus 5", "2026-06-01T00:00:00Z", 1_000_000),
    ("claude-opus-4-8", "Claude Opus 4.8", "2026-05-01T00:00:00Z", 1_000_000),
    ("claude-opus-4-7", "Claude Opus 4.7", "2026-04-16T00:00:00Z", 1_000_000),
    ("claude-opus-4-6", "Claude Opus 4.6", "2026-02-05T00:00:00Z", 1_000_000),
    ("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17T00:00:00Z", 1_000_000),
    ("claude-opus-4-5-20251101", "Claude Opus 4.5", "2025-11-01T00:00:00Z", 200_000),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-01T00:00:00Z", 200_000),
    ("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z", 200_000),
)
CAPABILITIES = {
    name: {"supported": True}
    for name in (
        "batch",
        "citations",
        "code_execution",
        "context_management",
        "effort",
        "image_input",
        "pdf_input",
        "structured_outputs",
        "thinking",
    )
}


def _now_iso(ts: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if ts is None else ts, UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _rand_id(prefix: str) -> str:
    return prefix + base64.b32encode(os.urandom(15)).decode().lower()


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _padded(obj: Any, pad: int) -> bytes:
    """Compact JSON with `pad` spaces before the closing brace, as the real API emits."""
    raw = _dumps(obj)
    return raw[:-1] + b" " * pad + b"}" if pad else raw


def _event(name: str, data: bytes) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"


# -- token accounting (deterministic; documented in docs/fake-upstream.md) -------------------


def _texts(params: dict[str, Any]) -> list[str]:
    """Every text string in `system` and `messages` (string content, text and tool_result)."""
    out: list[str] = []

    def blocks(content: Any) -> None:
        if isinstance(content, str):
            out.append(content)
        elif isinstance(content, list):
            for block in content:
                if isinstance(block, dict):
                    text = block.get("text")
                    if isinstance(text, str):
                        out.append(text)
                    if block.get("type") == "tool_result":
                        blocks(block.get("content"))

    blocks(params.get("system"))
    messages = params.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                blocks(message.get("content"))
    return out


def input_tokens_for(params: dict[str, Any]) -> int:
    """ceil(characters of all text in system + messages / 4), at least 1."""
    return max(1, math.ceil(sum(len(t) for t in _texts(params)) / 4))


def output_tokens_for(text_chars: int) -> int:
    """ceil(characters generated / 4), at least 1."""
    return max(1, math.ceil(text_chars / 4))


def _directive(texts: Iterable[str]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for text in texts:
        if "[[fake:" not in text:
            continue
        for match in DIRECTIVE.finditer(text):
            try:
                value = json.loads(match.group(1))
            except ValueError:
                continue
            if isinstance(value, dict):
                merged.update(value)
    return merged


@dataclass
class Reply:
    """One generated assistant message, with the events that stream it."""

    message: dict[str, Any]
    blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]]  # (start block, deltas)


def _plan(params: dict[str, Any], texts: list[str], directive: dict[str, Any]) -> Reply:
    model = str(params.get("model"))
    chunks = int(directive.get("text_chunks", DEFAULT_TEXT_CHUNKS) or 0)
    pieces = [WORDS[i % len(WORDS)] for i in range(max(chunks, 0))]
    generated = 0
    blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    content: list[dict[str, Any]] = []

    thinking = params.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
        text = "".join(THINKING)
        generated += len(text)
        deltas: list[dict[str, Any]] = [{"type": "thinking_delta", "thinking": t} for t in THINKING]
        deltas.append({"type": "signature_delta", "signature": SIGNATURE})
        blocks.append(({"type": "thinking", "thinking": "", "signature": ""}, deltas))
        content.append({"type": "thinking", "thinking": text, "signature": SIGNATURE})

    text = "".join(pieces)
    generated += len(text)
    blocks.append(
        ({"type": "text", "text": ""}, [{"type": "text_delta", "text": p} for p in pieces])
    )
    content.append({"type": "text", "text": text})

    tools = params.get("tools")
    choice = params.get("tool_choice")
    choice = choice if isinstance(choice, dict) else {}
    wants_tool = directive.get("tool_use") or choice.get("type") in ("any", "tool")
    stop_reason = "end_turn"
    if isinstance(tools, list) and tools and isinstance(tools[0], dict) and wants_tool:
        name = choice.get("name") or tools[0].get("name")
        tool_id = _rand_id("toolu_")
        parts = ["", '{"query": ', '"fake"}']
        generated += sum(len(p) for p in parts)
        start: dict[str, Any] = {
            "type": "tool_use",
            "id": tool_id,
            "name": name or "tool",
            "input": {},
        }
        start["caller"] = {"type": "direct"}
        blocks.append((start, [{"type": "input_json_delta", "partial_json": p} for p in parts]))
        content.append({**start, "input": {"query": "fake"}})
        stop_reason = "tool_use"

    output_tokens = directive.get("output_tokens")
    if not isinstance(output_tokens, int):
        output_tokens = output_tokens_for(generated)
    max_tokens = params.get("max_tokens")
    if isinstance(max_tokens, int) and output_tokens > max_tokens:
        output_tokens, stop_reason = max_tokens, "max_tokens"

    usage: dict[str, Any] = {
        "input_tokens": max(1, math.ceil(sum(len(t) for t in texts) / 4)),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard",
        "inference_geo": "us" if params.get("inference_geo") == "us" else "global",
    }
    if params.get("speed") == "fast":
        usage["speed"] = "fast"
    extra = directive.get("usage")
    if isinstance(extra, dict):
        for key, value in extra.items():
            if isinstance(value, dict) and isinstance(usage.get(key), dict):
                usage[key] = {**usage[key], **value}
            else:
                usage[key] = value
        if "cache_creation_input_tokens" in extra and "cache_creation" not in extra:
            usage["cache_creation"] = {
                "ephemeral_5m_input_tokens": extra["cache_creation_input_tokens"],
                "ephemeral_1h_input_tokens": 0,
            }
        elif "cache_creation" in extra and "cache_creation_input_tokens" not in extra:
            split = usage["cache_creation"]
            usage["cache_creation_input_tokens"] = sum(
                v for v in split.values() if isinstance(v, int)
            )

    message = {
        "model": model,
        "id": _rand_id("msg_01"),
        "type": "message",
        "role": "assistant",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }
    return Reply(message=message, blocks=blocks)


# -- batches ----------------------------------------------------------------------------------


@dataclass
class Batch:
    id: str
    created: float
    ends: float
    requests: list[tuple[str, dict[str, Any]]]
    cancel_initiated: float | None = None
    results: list[bytes] = field(default_factory=list)

    def status(self, now: float) -> str:
        if now >= self.ends:
            return "ended"
        return "canceling" if self.cancel_initiated is not None else "in_progress"


# -- the app ----------------------------------------------------------------------------------


@dataclass
class Config:
    batch_seconds: float = 0.5
    slow_headers_seconds: float = 30.0
    record_limit: int = 1000
    reject_keys: frozenset[str] = frozenset()
    public_url: str | None = None


class FakeUpstream:
    """The ASGI application. Create it with `create_app()`."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.recorded: deque[tuple[float, str, str, str, list[tuple[bytes, bytes]], bytes]] = deque(
            maxlen=config.record_limit
        )
        self.batches: dict[str, Batch] = {}
        self.stats: dict[str, int] = dict.fromkeys(
            (
                "requests",
                "streams_started",
                "streams_completed",
                "streams_disconnected",
                "streams_dropped",
                "active_streams",
                "max_active_streams",
            ),
            0,
        )
        self._ratelimit_second = -1
        self._ratelimit_headers: list[tuple[bytes, bytes]] = []

    # -- ASGI entry ---------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path: str = scope["path"]
        method: str = scope["method"]
        query = scope.get("query_string", b"").decode("latin-1")
        if path.startswith("/_fake/"):
            await self._control(method, path, send)
            return
        headers: list[tuple[bytes, bytes]] = list(scope.get("headers") or [])
        self.recorded.append((time.time(), method, path, query, headers, bytes(body)))
        self.stats["requests"] += 1
        request = Request(scope, method, path, query, headers, bytes(body), receive, send)
        try:
            await self._route(request)
        finally:
            request.close()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- helpers ------------------------------------------------------------------------------

    def _base_headers(self, request_id: str, content_type: bytes) -> list[tuple[bytes, bytes]]:
        now = int(time.time())
        if now != self._ratelimit_second:
            reset = datetime.fromtimestamp(now + 60, UTC).strftime("%Y-%m-%dT%H:%M:%SZ").encode()
            headers = []
            for kind, limit in (
                (b"requests", b"4000"),
                (b"tokens", b"2000000"),
                (b"input-tokens", b"2000000"),
                (b"output-tokens", b"400000"),
            ):
                prefix = b"anthropic-ratelimit-" + kind
                headers += [
                    (prefix + b"-limit", limit),
                    (prefix + b"-remaining", str(int(limit) - 1).encode()),
                    (prefix + b"-reset", reset),
                ]
            self._ratelimit_headers, self._ratelimit_second = headers, now
        return [
            (b"content-type", content_type),
            (b"request-id", request_id.encode()),
            *self._ratelimit_headers,
        ]

    async def _json(
        self,
        send: Send,
        status: int,
        obj: Any,
        *,
        request_id: str | None = None,
        extra: Iterable[tuple[bytes, bytes]] = (),
        content_type: bytes = JSON,
    ) -> None:
        body = obj if isinstance(obj, bytes) else _dumps(obj)
        headers = self._base_headers(request_id or _rand_id("req_011"), content_type)
        headers += [(b"content-length", str(len(body)).encode()), *extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _error(
        self,
        send: Send,
        status: int,
        message: str,
        *,
        error_type: str | None = None,
        extra: Iterable[tuple[bytes, bytes]] = (),
    ) -> None:
        default_type, should_retry = ERROR_TYPE.get(status, ("api_error", "false"))
        request_id = _rand_id("req_011")
        body = {
            "type": "error",
            "error": {"type": error_type or default_type, "message": message},
            "request_id": request_id,
        }
        headers = [(b"x-should-retry", should_retry.encode()), *extra]
        await self._json(send, status, body, request_id=request_id, extra=headers)

    # -- routing ------------------------------------------------------------------------------

    async def _route(self, req: Request) -> None:
        if not req.path.startswith("/v1/"):
            await self._error(req.send, 404, "Not found")
            return
        key = req.header(b"x-api-key")
        if not key:
            auth = req.header(b"authorization")
            if auth[:7].lower() == "bearer ":
                key = auth[7:].strip()
        if not key:
            await self._error(req.send, 401, "x-api-key header is required")
            return
        if key.startswith(INVALID_KEY_PREFIX) or key in self.config.reject_keys:
            await self._error(req.send, 401, "invalid x-api-key")
            return
        if not req.header(b"anthropic-version"):
            await self._error(req.send, 400, "anthropic-version: header is required")
            return
        path, method = req.path, req.method
        if path == "/v1/messages" and method == "POST":
            await self._messages(req)
        elif path == "/v1/messages/count_tokens" and method == "POST":
            await self._count_tokens(req)
        elif path == "/v1/models" and method == "GET":
            await self._models_list(req)
        elif path.startswith("/v1/models/") and method == "GET":
            await self._models_get(req, path[len("/v1/models/") :])
        elif path == "/v1/messages/batches" and method in ("GET", "POST"):
            await (self._batch_create(req) if method == "POST" else self._batch_list(req))
        elif path.startswith("/v1/messages/batches/"):
            await self._batch_item(req, path[len("/v1/messages/batches/") :].split("/"))
        else:
            await self._error(req.send, 404, "Not found")

    def _params(self, req: Request) -> dict[str, Any] | str:
        try:
            params = json.loads(req.body)
        except ValueError:
            return "There was an issue with your request body: invalid JSON"
        if not isinstance(params, dict):
            return "Request body must be a JSON object"
        return params

    async def _faults(self, req: Request, directive: dict[str, Any]) -> bool:
        """Apply delay and header-level faults. True when the request has been answered."""
        delay = directive.get("delay_ms")
        if isinstance(delay, int | float) and delay > 0 and await req.sleep(delay / 1000):
            return True
        fault = str(directive.get("fault") or "")
        if fault == "timeout":
            await req.disconnected()
            return True
        if fault == "slow_headers" and await req.sleep(self.config.slow_headers_seconds):
            return True
        if fault in ERROR_STATUS:
            status = ERROR_STATUS[fault]
            extra: list[tuple[bytes, bytes]] = []
            if status == 429:
                retry_after = directive.get("retry_after", 1)
                extra.append((b"retry-after", str(retry_after).encode()))
            message = {500: "Internal server error", 529: "Overloaded"}.get(
                status, "Number of requests has exceeded your rate limit"
            )
            await self._error(req.send, status, message, extra=extra)
            return True
        return False

    # -- messages -----------------------------------------------------------------------------

    async def _messages(self, req: Request) -> None:
        params = self._params(req)
        if isinstance(params, str):
            await self._error(req.send, 400, params)
            return
        for name, kind in (("model", str), ("max_tokens", int), ("messages", list)):
            if not isinstance(params.get(name), kind):
                await self._error(req.send, 400, f"{name}: Field required")
                return
        texts = _texts(params)
        directive = _directive(texts)
        if await self._faults(req, directive):
            return
        reply = _plan(params, texts, directive)
        if params.get("stream") is True:
            await self._stream(req, reply, directive)
            return
        if directive.get("fault") == "drop":
            body = _dumps(reply.message)
            headers = self._base_headers(_rand_id("req_011"), JSON)
            headers.append((b"content-length", str(len(body)).encode()))
            await req.send({"type": "http.response.start", "status": 200, "headers": headers})
            await req.send(
                {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
            )
            return  # the server closes the connection: the body is cut short
        cookie = directive.get("set_cookie")
        extra = [(b"set-cookie", str(cookie).encode())] if cookie else []
        await self._json(req.send, 200, reply.message, extra=extra)

    def _events(self, reply: Reply) -> list[bytes]:
        message, usage = reply.message, reply.message["usage"]
        start_usage = {**usage, "output_tokens": min(1, usage["output_tokens"])}
        start = {**message, "content": [], "stop_reason": None, "usage": start_usage}
        events = [_event("message_start", _dumps({"type": "message_start", "message": start}))]
        for index, (block, deltas) in enumerate(reply.blocks):
            events.append(
                _event(
                    "content_block_start",
                    _padded(
                        {"type": "content_block_start", "index": index, "content_block": block},
                        (index * 5) % 13,
                    ),
                )
            )
            if index == 0:
                events.append(_event("ping", b'{"type": "ping"}'))
            for n, delta in enumerate(deltas):
                events.append(
                    _event(
                        "content_block_delta",
                        _padded(
                            {"type": "content_block_delta", "index": index, "delta": delta},
                            (n * 7 + index) % 15,
                        ),
                    )
                )
            events.append(
                _event(
                    "content_block_stop",
                    _padded({"type": "content_block_stop", "index": index}, 6),
                )
            )
        delta_usage = {
            key: usage[key]
            for key in (
                "input_tokens",
                "cache_creation_input_tokens",
                "cache_read_input_tokens",
                "output_tokens",
                "server_tool_use",
                "output_tokens_details",
            )
            if key in usage
        }
        events.append(
            _event(
                "message_delta",
                _padded(
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                        "usage": delta_usage,
                    },
                    12,
                ),
            )
        )
        events.append(_event("message_stop", _padded({"type": "message_stop"}, 5)))
        return events

    async def _stream(self, req: Request, reply: Reply, directive: dict[str, Any]) -> None:
        events = self._events(reply)
        fault = directive.get("fault")
        if fault == "drop":
            events = events[: min(4, len(events) - 2)]
        elif fault == "error_event":
            error = {
                "type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded"},
            }
            events = [*events[: min(4, len(events) - 2)], _event("error", _dumps(error))]
        delay = directive.get("chunk_delay_ms")
        pause = delay / 1000 if isinstance(delay, int | float) and delay > 0 else 0.0
        headers = self._base_headers(_rand_id("req_011"), SSE)
        headers.append((b"cache-control", b"no-cache"))
        stats = self.stats
        stats["streams_started"] += 1
        stats["active_streams"] += 1
        stats["max_active_streams"] = max(stats["max_active_streams"], stats["active_streams"])
        try:
            await req.send({"type": "http.response.start", "status": 200, "headers": headers})
            last = len(events) - 1
            for i, event in enumerate(events):
                if pause and i and await req.sleep(pause):
                    stats["streams_disconnected"] += 1
                    return
                more = i < last or fault == "drop"
                await req.send({"type": "http.response.body", "body": event, "more_body": more})
            if fault == "drop":
                stats["streams_dropped"] += 1
                return  # returning mid-response makes the server close the connection
            stats["streams_completed"] += 1
        finally:
            stats["active_streams"] -= 1

    async def _count_tokens(self, req: Request) -> None:
        params = self._params(req)
        if isinstance(params, str):
            await self._error(req.send, 400, params)
            return
        for name, kind in (("model", str), ("messages", list)):
            if not isinstance(params.get(name), kind):
                await self._error(req.send, 400, f"{name}: Field required")
                return
        texts = _texts(params)
        if await self._faults(req, _directive(texts)):
            return
        await self._json(req.send, 200, {"input_tokens": input_tokens_for(params)})

    # -- models -------------------------------------------------------------------------------

    @staticmethod
    def _model_info(model: tuple[str, str, str, int]) -> dict[str, Any]:
        model_id, name, created, window = model
        return {
            "type": "model",
            "id": model_id,
            "display_name": name,
            "created_at": created,
            "max_input_tokens": window,
            "max_tokens": 128_000 if window > 200_000 else 64_000,
            "capabilities": CAPABILITIES,
        }

    async def _models_list(self, req: Request) -> None:
        page = _page([m[0] for m in MODELS], req.query)
        if isinstance(page, str):
            await self._error(req.send, 400, page)
            return
        ids, has_more = page
        by_id = {m[0]: m for m in MODELS}
        data = [self._model_info(by_id[i]) for i in ids]
        await self._json(req.send, 200, _page_body(data, has_more))

    async def _models_get(self, req: Request, model_id: str) -> None:
        for model in MODELS:
            if model[0] == model_id:
                await self._json(req.send, 200, self._model_info(model))
                return
        await self._error(req.send, 404, f"model: {model_id}")

    # -- batches ------------------------------------------------------------------------------

    def _batch_json(self, batch: Batch, req: Request) -> dict[str, Any]:
        now = time.time()
        status = batch.status(now)
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        if status != "ended":
            counts["processing"] = len(batch.requests)
        else:
            for line in self._batch_results(batch):
                kind = json.loads(line)["result"]["type"]
                counts[kind] += 1
        base = self.config.public_url or f"{req.scheme}://{req.header(b'host') or 'localhost'}"
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": counts,
            "created_at": _now_iso(batch.created),
            "expires_at": _now_iso(batch.created + 86_400),
            "ended_at": _now_iso(batch.ends) if status == "ended" else None,
            "cancel_initiated_at": _now_iso(batch.cancel_initiated)
            if batch.cancel_initiated is not None
            else None,
            "archived_at": None,
            "results_url": f"{base.rstrip('/')}/v1/messages/batches/{batch.id}/results"
            if status == "ended"
            else None,
        }

    def _batch_results(self, batch: Batch) -> list[bytes]:
        if batch.results:
            return batch.results
        lines = []
        for custom_id, params in batch.requests:
            result: dict[str, Any]
            texts = _texts(params)
            directive = _directive(texts)
            fault = str(directive.get("fault") or "")
            if batch.cancel_initiated is not None:
                result = {"type": "canceled"}
            elif fault in ERROR_STATUS:
                kind, _ = ERROR_TYPE[ERROR_STATUS[fault]]
                result = {
                    "type": "errored",
                    "error": {
                        "type": "error",
                        "error": {"type": kind, "message": "Internal server error"},
                        "request_id": _rand_id("req_011"),
                    },
                }
            else:
                message = _plan(params, texts, directive).message
                message["usage"]["service_tier"] = "batch"
                result = {"type": "succeeded", "message": message}
            lines.append(_dumps({"custom_id": custom_id, "result": result}))
        batch.results = lines
        return lines

    async def _batch_create(self, req: Request) -> None:
        params = self._params(req)
        if isinstance(params, str):
            await self._error(req.send, 400, params)
            return
        requests = params.get("requests")
        if not isinstance(requests, list) or not requests:
            await self._error(req.send, 400, "requests: Field required")
            return
        parsed: list[tuple[str, dict[str, Any]]] = []
        for i, item in enumerate(requests):
            if not (
                isinstance(item, dict)
                and isinstance(item.get("custom_id"), str)
                and isinstance(item.get("params"), dict)
            ):
                await self._error(req.send, 400, f"requests.{i}: custom_id and params required")
                return
            parsed.append((item["custom_id"], item["params"]))
        now = time.time()
        batch = Batch(
            id=_rand_id("msgbatch_01"),
            created=now,
            ends=now + self.config.batch_seconds,
            requests=parsed,
        )
        self.batches[batch.id] = batch
        await self._json(req.send, 200, self._batch_json(batch, req))

    async def _batch_list(self, req: Request) -> None:
        ordered = sorted(self.batches.values(), key=lambda b: b.created, reverse=True)
        page = _page([b.id for b in ordered], req.query)
        if isinstance(page, str):
            await self._error(req.send, 400, page)
            return
        ids, has_more = page
        data = [self._batch_json(self.batches[i], req) for i in ids]
        await self._json(req.send, 200, _page_body(data, has_more))

    async def _batch_item(self, req: Request, parts: list[str]) -> None:
        batch = self.batches.get(parts[0])
        if batch is None:
            await self._error(req.send, 404, f"message_batch: {parts[0]} not found")
            return
        now, method = time.time(), req.method
        if len(parts) == 1 and method == "GET":
            await self._json(req.send, 200, self._batch_json(batch, req))
        elif len(parts) == 1 and method == "DELETE":
            if batch.status(now) != "ended":
                message = "Batch must be ended or canceled before it can be deleted."
                await self._error(req.send, 400, message)
                return
            del self.batches[batch.id]
            await self._json(req.send, 200, {"id": batch.id, "type": "message_batch_deleted"})
        elif parts[1:] == ["cancel"] and method == "POST":
            if batch.status(now) == "in_progress":
                batch.cancel_initiated = now
            await self._json(req.send, 200, self._batch_json(batch, req))
        elif parts[1:] == ["results"] and method == "GET":
            if batch.status(now) != "ended":
                await self._error(req.send, 400, "Batch is still processing; no results yet.")
                return
            body = b"".join(line + b"\n" for line in self._batch_results(batch))
            await self._json(req.send, 200, body, content_type=b"application/binary")
        else:
            await self._error(req.send, 404, "Not found")

    # -- control endpoints --------------------------------------------------------------------

    def requests_json(self) -> list[dict[str, Any]]:
        """The recorded requests, oldest first."""
        return [
            {
                "at": at,
                "method": method,
                "path": path,
                "query": query,
                "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in headers],
                "body": body.decode("utf-8", "replace"),
                "body_base64": base64.b64encode(body).decode(),
            }
            for at, method, path, query, headers, body in self.recorded
        ]

    async def _control(self, method: str, path: str, send: Send) -> None:
        if path == "/_fake/requests" and method == "GET":
            await self._json(send, 200, self.requests_json())
        elif path == "/_fake/requests" and method == "DELETE":
            count = len(self.recorded)
            self.recorded.clear()
            await self._json(send, 200, {"deleted": count})
        elif path == "/_fake/stats" and method == "GET":
            await self._json(send, 200, self.stats)
        else:
            await self._error(send, 404, "Not found")


def _page(ids: list[str], query: dict[str, list[str]]) -> tuple[list[str], bool] | str:
    """Anthropic cursor pagination over `ids` (already in list order)."""
    try:
        limit = int(query.get("limit", ["20"])[0])
    except ValueError:
        return "limit: Input should be a valid integer"
    if not 1 <= limit <= 1000:
        return "limit: Input should be between 1 and 1000"
    after, before = query.get("after_id", [None])[0], query.get("before_id", [None])[0]
    if after is not None:
        start = ids.index(after) + 1 if after in ids else len(ids)
        return ids[start : start + limit], start + limit < len(ids)
    if before is not None:
        end = ids.index(before) if before in ids else 0
        start = max(0, end - limit)
        return ids[start:end], start > 0
    return ids[:limit], limit < len(ids)


def _page_body(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "data": data,
        "has_more": has_more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


class Request:
    """One HTTP request: parsed parts plus the ASGI channels."""

    __slots__ = (
        "_disconnect",
        "body",
        "headers",
        "method",
        "path",
        "query",
        "receive",
        "scheme",
        "send",
    )

    def __init__(
        self,
        scope: Scope,
        method: str,
        path: str,
        query: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        receive: Receive,
        send: Send,
    ) -> None:
        self.method, self.path, self.body = method, path, body
        self.query = parse_qs(query) if query else {}
        self.headers = headers
        self.scheme = scope.get("scheme", "http")
        self.receive, self.send = receive, send
        self._disconnect: asyncio.Task[Message] | None = None

    def header(self, name: bytes) -> str:
        for key, value in self.headers:
            if key == name:
                return value.decode("latin-1")
        return ""

    def close(self) -> None:
        if self._disconnect is not None and not self._disconnect.done():
            self._disconnect.cancel()

    def _watch(self) -> asyncio.Task[Message]:
        if self._disconnect is None:
            self._disconnect = asyncio.ensure_future(self.receive())
        return self._disconnect

    async def disconnected(self) -> None:
        """Wait until the client goes away."""
        await self._watch()

    async def sleep(self, seconds: float) -> bool:
        """Sleep; True if the client disconnected meanwhile (then stop answering)."""
        watch = self._watch()
        if watch.done():
            return True
        try:
            await asyncio.wait_for(asyncio.shield(watch), timeout=seconds)
        except TimeoutError:
            return False
        return True


def create_app(
    *,
    batch_seconds: float = 0.5,
    slow_headers_seconds: float = 30.0,
    record_limit: int = 1000,
    reject_keys: Iterable[str] | None = None,
    public_url: str | None = None,
) -> FakeUpstream:
    """A new fake upstream (its own state). `reject_keys` defaults to the comma-separated
    env var FAKE_UPSTREAM_REJECT_KEYS; `public_url` overrides the host used in results_url."""
    if reject_keys is None:
        env = os.environ.get("FAKE_UPSTREAM_REJECT_KEYS", "")
        reject_keys = [k.strip() for k in env.split(",") if k.strip()]
    return FakeUpstream(
        Config(
            batch_seconds=batch_seconds,
            slow_headers_seconds=slow_headers_seconds,
            record_limit=record_limit,
            reject_keys=frozenset(reject_keys),
            public_url=public_url,
        )
    )
