from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        from billing import checks  # noqa: F401  (registers the deploy checks)
        from billing.services import webhook_payloads_scrub_for_tenant
        from privacy.adapters import register_tenant_purge

        register_tenant_purge(webhook_payloads_scrub_for_tenant)
