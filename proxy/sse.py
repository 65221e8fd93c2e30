"""Incremental reader of an Anthropic Messages SSE stream, for metering on the side.

The proxy relays upstream bytes unchanged and feeds each chunk here. Chunks may split events,
lines and even `\\r\\n` pairs anywhere. Only `message_start`, `message_delta` and `error` events
are JSON-parsed (decided from the `event:` line); every other event costs a few byte compares.
Nothing fed to `feed` ever raises: malformed events are ignored.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["StreamUsageReader"]

_PARSED = frozenset({b"message_start", b"message_delta", b"error"})
# Only message_start carries these; a message_delta never re-sends them (reference §3.3).
_START_ONLY = frozenset({"cache_creation", "service_tier", "inference_geo", "speed"})
_MAX_PENDING = 4 * 1024 * 1024  # a longer unterminated line is dropped (never one we parse)


class StreamUsageReader:
    """Feed it raw SSE bytes; read `usage`, `model`, `message_id`, `stop_reason`, `error`."""

    __slots__ = (
        "_data",
        "_delta_usage",
        "_discarding",
        "_event",
        "_has_fields",
        "_pending",
        "_start_usage",
        "error",
        "event_count",
        "message_id",
        "model",
        "saw_message_start",
        "saw_message_stop",
        "stop_reason",
    )

    def __init__(self) -> None:
        self.model: str | None = None
        self.message_id: str | None = None
        self.stop_reason: str | None = None
        self.error: tuple[str, str] | None = None
        self.saw_message_start = False
        self.saw_message_stop = False
        self.event_count = 0
        self._start_usage: dict[str, Any] = {}
        self._delta_usage: dict[str, Any] | None = None
        self._pending = b""  # bytes after the last complete line (a trailing \r is kept here)
        self._discarding = False  # inside an over-long line: skip to its end
        self._event: bytes | None = None
        self._data: list[bytes] = []
        self._has_fields = False

    # -- results ---------------------------------------------------------------------------

    @property
    def usage(self) -> dict[str, Any]:
        """message_start's usage, overwritten by each non-null field of the last message_delta
        usage (never summed); the cache split, service tier, geo and speed only from the start."""
        final = dict(self._start_usage)
        if self._delta_usage:
            for key, value in self._delta_usage.items():
                if value is not None and key not in _START_ONLY:
                    final[key] = value
        return final

    # -- input -----------------------------------------------------------------------------

    def feed(self, chunk: bytes) -> None:
        """Consume the next chunk of the stream (any size, split anywhere)."""
        if not chunk:
            return
        data = self._pending + chunk if self._pending else bytes(chunk)
        held_cr = b""
        if b"\r" in data:
            if data.endswith(b"\r"):  # may be the first half of \r\n: decide on the next chunk
                data, held_cr = data[:-1], b"\r"
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = data.split(b"\n")
        tail = lines.pop()
        for line in lines:
            if self._discarding:
                self._discarding = False
                continue
            self._line(line)
        if len(tail) > _MAX_PENDING:
            self._discarding = True
            tail, held_cr = b"", b""
        self._pending = tail + held_cr

    def close(self) -> None:
        """End of stream: dispatch a final event that lacked its terminating blank line."""
        pending, self._pending = self._pending.rstrip(b"\r"), b""
        if pending and not self._discarding:
            self._line(pending)
        self._discarding = False
        self._line(b"")

    # -- internals -------------------------------------------------------------------------

    def _line(self, line: bytes) -> None:
        if not line:
            self._dispatch()
            return
        if line[0] == 0x3A:  # ":" comment
            return
        field, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if field == b"event":
            self._event = value
            self._has_fields = True
        elif field == b"data":
            self._has_fields = True
            event = self._event
            if event is None or event in _PARSED:
                self._data.append(value)
        elif field in (b"id", b"retry"):
            self._has_fields = True

    def _dispatch(self) -> None:
        event, data = self._event, self._data
        if not self._has_fields:
            return
        self._event, self._data, self._has_fields = None, [], False
        self.event_count += 1
        if event == b"message_stop":
            self.saw_message_stop = True
            return
        if event not in _PARSED or not data:
            return
        try:
            payload = json.loads(b"\n".join(data))
        except (ValueError, RecursionError):
            return
        if not isinstance(payload, dict):
            return
        if event == b"message_start":
            self._on_message_start(payload)
        elif event == b"message_delta":
            self._on_message_delta(payload)
        else:
            self._on_error(payload)

    def _on_message_start(self, payload: dict[str, Any]) -> None:
        message = payload.get("message")
        if not isinstance(message, dict):
            return
        self.saw_message_start = True
        model, message_id, usage = message.get("model"), message.get("id"), message.get("usage")
        if isinstance(model, str):
            self.model = model
        if isinstance(message_id, str):
            self.message_id = message_id
        if isinstance(usage, dict):
            self._start_usage = dict(usage)

    def _on_message_delta(self, payload: dict[str, Any]) -> None:
        delta, usage = payload.get("delta"), payload.get("usage")
        if isinstance(delta, dict):
            stop_reason = delta.get("stop_reason")
            if isinstance(stop_reason, str):
                self.stop_reason = stop_reason
        if isinstance(usage, dict):
            self._delta_usage = usage

    def _on_error(self, payload: dict[str, Any]) -> None:
        error = payload.get("error")
        if isinstance(error, dict):
            error_type, message = error.get("type"), error.get("message")
            self.error = (
                error_type if isinstance(error_type, str) else "unknown_error",
                message if isinstance(message, str) else "",
            )
