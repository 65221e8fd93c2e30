from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    name = "privacy"

    def ready(self) -> None:
        from privacy.integrations import register_all
        from privacy.retention import register_expiry

        register_all()
        register_expiry("privacy.DataExport", "expires_at", scope="public")
