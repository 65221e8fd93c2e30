"""Audit models, one module per concern; every model is re-exported here for Django."""

from audit.models.api_tokens import ApiToken
from audit.models.classification import ClassificationSettings, TenantCategory
from audit.models.events import AuditEvent
from audit.models.exports import ExportJob
from audit.models.rollups import (
    InsightSettings,
    UsageCacheWaste,
    UsageClassDailyRollup,
    UsageClassRollup,
    UsageDailyRollup,
    UsageRollup,
)
from audit.models.usage import UsageRecord

__all__ = [
    "ApiToken",
    "AuditEvent",
    "ClassificationSettings",
    "ExportJob",
    "InsightSettings",
    "TenantCategory",
    "UsageCacheWaste",
    "UsageClassDailyRollup",
    "UsageClassRollup",
    "UsageDailyRollup",
    "UsageRecord",
    "UsageRollup",
]
