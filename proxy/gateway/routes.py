"""The Anthropic endpoints we serve; anything else under /v1/ is a 404, never forwarded."""

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    name: str
    kind: str  # the usage record's kind
    has_json_body: bool = False
    batch_id: str | None = None
    model_id: str | None = None


_BATCH = r"(?P<batch>msgbatch_[A-Za-z0-9_-]{1,80})"
_PATTERNS: list[tuple[str, re.Pattern[str], str, str, bool]] = [
    ("POST", re.compile(r"/v1/messages"), "messages", "messages", True),
    ("POST", re.compile(r"/v1/messages/count_tokens"), "count_tokens", "count_tokens", True),
    ("GET", re.compile(r"/v1/models"), "models_list", "models", False),
    (
        "GET",
        re.compile(r"/v1/models/(?P<model>[A-Za-z0-9._:-]{1,100})"),
        "models_get",
        "models",
        False,
    ),
    ("POST", re.compile(r"/v1/messages/batches"), "batches_create", "batch", True),
    ("GET", re.compile(r"/v1/messages/batches"), "batches_list", "batch", False),
    ("GET", re.compile(rf"/v1/messages/batches/{_BATCH}"), "batches_get", "batch", False),
    (
        "POST",
        re.compile(rf"/v1/messages/batches/{_BATCH}/cancel"),
        "batches_cancel",
        "batch",
        False,
    ),
    ("DELETE", re.compile(rf"/v1/messages/batches/{_BATCH}"), "batches_delete", "batch", False),
    (
        "GET",
        re.compile(rf"/v1/messages/batches/{_BATCH}/results"),
        "batches_results",
        "batch",
        False,
    ),
]


def route_match(method: str, path: str) -> Route | None:
    path = path.rstrip("/") or path
    for route_method, pattern, name, kind, has_body in _PATTERNS:
        if method != route_method:
            continue
        match = pattern.fullmatch(path)
        if match:
            groups = match.groupdict()
            return Route(
                name=name,
                kind=kind,
                has_json_body=has_body,
                batch_id=groups.get("batch"),
                model_id=groups.get("model"),
            )
    return None
