"""What the gateway learns about one call, from the first byte in to the last byte out."""

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from proxy.gateway.errors import new_request_id
from proxy.gateway.keys import ResolvedKey
from proxy.gateway.routes import Route
from tokenscope.lib.ids import uuid7


@dataclass
class Exchange:
    route: Route
    endpoint: str
    ip_address: str | None
    user_agent: str
    record_id: uuid.UUID = field(default_factory=uuid7)
    request_id: str = field(default_factory=new_request_id)
    created_at: datetime = field(default_factory=timezone.now)
    started: float = field(default_factory=time.perf_counter)
    key: ResolvedKey | None = None
    body: dict[str, Any] | None = None
    body_bytes: bytes = b""
    model: str = ""
    is_stream: bool = False
    status_code: int = 0
    error_type: str = ""
    stop_reason: str = ""
    usage: dict[str, Any] = field(default_factory=dict)
    upstream_request_id: str = ""
    client_disconnected: bool = False
    batch_id: str = ""
    owned_batches: set[str] | None = None
    upstream_started: float | None = None
    upstream_headers_at: float | None = None
    upstream_finished: float | None = None
    first_byte_sent: float | None = None
    finished: float | None = None
    overhead_ms: float = 0.0
    reservation: Any = None  # proxy.budgets.enforcer.Reservation, settled by the writer

    def elapsed_ms(self, since: float, until: float | None = None) -> float:
        return round(((until or time.perf_counter()) - since) * 1000, 3)

    def overhead_so_far_ms(self) -> float:
        """Time spent in TokenScope itself: all of it except waiting for upstream."""
        now = time.perf_counter()
        waited = 0.0
        if self.upstream_started is not None:
            waited = (
                self.upstream_finished or self.upstream_headers_at or now
            ) - self.upstream_started
        return round(max(0.0, (now - self.started) - waited) * 1000, 3)
