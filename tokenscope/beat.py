"""The beat scheduler: `celery beat -S tokenscope.beat:Scheduler`, loaded once Django is set up."""

from typing import Any

from tenant_schemas_celery.scheduler import TenantAwareScheduler


class Scheduler(TenantAwareScheduler):
    """Entries without `tenant_schemas` run in every tenant; ["public"] runs once, globally.

    The stock scheduler looks the public schema up as a Tenant row; we have none (the base
    domain is not a tenant), so public entries are sent here directly.
    """

    def apply_entry(self, entry: Any, producer: Any = None) -> None:
        if entry.options.get("headers", {}).get("_schema_name") == "public":
            self.apply_async(entry, producer=producer, advance=False)
            return
        super().apply_entry(entry, producer=producer)
