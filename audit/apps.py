from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"

    def ready(self) -> None:
        from privacy.retention import register_expiry, register_retention

        # Rollups age out with the records they summarise; exports after 7 days.
        register_retention("audit.UsageRollup", "hour")
        register_retention("audit.UsageClassRollup", "hour")
        register_retention("audit.UsageDailyRollup", "day")
        register_retention("audit.UsageClassDailyRollup", "day")
        register_retention("audit.UsageCacheWaste", "hour")
        register_expiry("audit.ExportJob", "expires_at")
