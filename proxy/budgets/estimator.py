"""The worst-case cost reserved before forwarding: an upper bound, never an under-estimate.

Input tokens are bounded by the UTF-8 byte length of the request JSON: every token the model
reads stands for at least one byte of the text it was cut from, JSON only adds bytes (quotes,
keys, escapes), and the few formatting tokens per message are fewer than the ~30 bytes of the
message's JSON envelope. What the body does not spell out is added explicitly: the hidden
tool-use system prompt, images and PDF pages (billed by pixels and pages, not bytes). Output is
bounded by `max_tokens` (thinking included). `proxy.pricing.worst_case_cost` then charges every
input token at the highest input-side rate. See docs/budgets.md for the argument and its limits.
"""

import base64
import binascii
import json
import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from proxy.pricing import worst_case_cost

# Anthropic's hidden system prompt for tool use is at most a few hundred tokens per model.
TOOL_USE_TOKENS = 1_000
# The most one image can cost (the largest high-resolution image, resized by the API).
IMAGE_TOKENS = 5_000
# A PDF page costs its text plus an image of the page: at most ~3,000 tokens.
PDF_PAGE_TOKENS = 3_000
# When the pages of a PDF cannot be counted, assume the most the API accepts in one request.
PDF_MAX_PAGES = 100
# Web searches are billed per search; a tool without `max_uses` is reserved at this many.
DEFAULT_WEB_SEARCHES = 10
_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![s\w])")


def _blocks(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every content block of the system prompt and the messages, nested tool results too."""
    found: list[dict[str, Any]] = []
    stack: list[Any] = [body.get("system"), *[m.get("content") for m in _list(body, "messages")]]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            found.append(item)
            if isinstance(item.get("content"), list):
                stack.append(item["content"])
    return found


def _list(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    value = body.get(name)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _pdf_pages(source: dict[str, Any]) -> int:
    if source.get("type") == "base64" and isinstance(source.get("data"), str):
        try:
            raw = base64.b64decode(source["data"], validate=False)
        except (binascii.Error, ValueError):
            return PDF_MAX_PAGES
        pages = len(_PDF_PAGE.findall(raw))
        # Page objects inside compressed object streams cannot be counted: assume the maximum.
        if pages and b"/ObjStm" not in raw:
            return pages
    return PDF_MAX_PAGES


def input_token_bound(body: dict[str, Any], body_bytes: bytes) -> int:
    """An upper bound of the input tokens of one Messages request."""
    bound = len(body_bytes)
    if body.get("tools"):
        bound += TOOL_USE_TOKENS
    for block in _blocks(body):
        kind = block.get("type")
        raw_source = block.get("source")
        source: dict[str, Any] = raw_source if isinstance(raw_source, dict) else {}
        if kind == "image":
            bound += IMAGE_TOKENS
        elif kind == "document" and source.get("type") not in ("text", "content"):
            bound += PDF_PAGE_TOKENS * _pdf_pages(source)
    return bound


def web_search_bound(body: dict[str, Any]) -> int:
    searches = 0
    for tool in _list(body, "tools"):
        if str(tool.get("type", "")).startswith("web_search"):
            max_uses = tool.get("max_uses")
            searches += (
                max_uses if isinstance(max_uses, int) and max_uses > 0 else (DEFAULT_WEB_SEARCHES)
            )
    return searches


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def message_worst_case(
    body: dict[str, Any], body_bytes: bytes, *, at: datetime, batch: bool = False
) -> Decimal:
    """Worst-case USD of one Messages request (a batch request's `params` with batch=True)."""
    return worst_case_cost(
        str(body.get("model") or ""),
        input_tokens=input_token_bound(body, body_bytes),
        max_tokens=_int(body.get("max_tokens")),
        at=at,
        batch=batch,
        speed=body.get("speed") if isinstance(body.get("speed"), str) else None,
        inference_geo=(
            body.get("inference_geo") if isinstance(body.get("inference_geo"), str) else None
        ),
        web_search_requests=web_search_bound(body),
    )


def request_worst_case(
    route_name: str, body: dict[str, Any], body_bytes: bytes, *, at: datetime
) -> tuple[Decimal, int, int]:
    """(worst-case USD, input token bound, output token bound) of a billable request."""
    if route_name == "batches_create":
        total = Decimal(0)
        tokens_in = tokens_out = 0
        for item in body.get("requests") or []:
            params = item["params"]
            # ensure_ascii escapes never shorten text: \\uXXXX is longer than the UTF-8 bytes.
            encoded = json.dumps(params).encode()
            total += message_worst_case(params, encoded, at=at, batch=True)
            tokens_in += input_token_bound(params, encoded)
            tokens_out += _int(params.get("max_tokens"))
        return total, tokens_in, tokens_out
    return (
        message_worst_case(body, body_bytes, at=at),
        input_token_bound(body, body_bytes),
        _int(body.get("max_tokens")),
    )
