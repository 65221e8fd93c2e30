from typing import Any

from django.http import HttpRequest

from accounts.models import User
from audit.models import AuditEvent
from tokenscope.lib.net import client_ip


def audit_event_record(
    actor: User | None,
    *,
    action: str,
    object_type: str,
    object_id: Any = "",
    object_repr: str = "",
    request: HttpRequest | None = None,
    changes: dict[str, Any] | None = None,
) -> AuditEvent:
    """Record an administrative action; call it inside the transaction of the change."""
    return AuditEvent.objects.create(
        actor=actor if actor is not None and actor.pk else None,
        actor_email=actor.email if actor is not None else "",
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        object_repr=object_repr[:200],
        ip_address=client_ip(request) if request is not None else None,
        changes=changes or {},
    )
