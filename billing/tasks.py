"""Thin Celery tasks: they take ids, run in the public schema and call billing.services."""

import logging
from typing import Any

from celery import shared_task
from django_tenants.utils import schema_context

from billing import services
from billing.models import WebhookEvent

logger = logging.getLogger(__name__)


@shared_task(bind=True, max_retries=5, default_retry_delay=60)
def webhook_event_process(self: Any, event_pk: int) -> int:
    """Process the event's entity queue (every pending event of it, in occurred_at order)."""
    with schema_context("public"):
        key = WebhookEvent.objects.filter(pk=event_pk).values_list("entity_key", flat=True).first()
        if key is None:
            return 0
        processed = services.webhook_events_process_for_key(key)
        failed = WebhookEvent.objects.filter(pk=event_pk, status=WebhookEvent.Status.FAILED)
        if failed.exists():
            raise self.retry()
        return processed


@shared_task
def billing_reconcile() -> dict[str, Any]:
    """Nightly: repair drift against Paddle's API and retry events left behind."""
    with schema_context("public"):
        return services.billing_reconcile()


@shared_task
def entitlements_refresh() -> list[str]:
    """Hourly: apply plan changes that time alone causes (grace and paid periods ending)."""
    with schema_context("public"):
        return services.entitlements_refresh()
