"""Audit models, one module per concern; every model is re-exported here for Django."""

from audit.models.events import AuditEvent
from audit.models.usage import UsageRecord

__all__ = ["AuditEvent", "UsageRecord"]
