import logging

from celery import shared_task
from django.db import connection

from proxy.batches import batches_meter_pending
from proxy.budgets.tasks import notification_webhook_post  # noqa: F401  (registers it)
from tenants.models import Tenant

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def batches_meter() -> int:
    """Meter the current tenant's ended batches (beat runs it in every tenant's schema)."""
    tenant = Tenant.objects.get(schema_name=connection.schema_name)  # type: ignore[attr-defined]
    return batches_meter_pending(tenant=tenant)
