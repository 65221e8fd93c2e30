from typing import Any

from django_tenants.utils import schema_context

from billing.models import WebhookEvent
from billing.services import MAX_EVENT_ATTEMPTS, webhook_events_process_for_key
from tokenscope.lib.commands import JsonCommand


class Command(JsonCommand):
    help = "Process stored Paddle webhook events that are pending or failed (no worker needed)."

    def run(self, **options: Any) -> dict[str, Any]:
        with schema_context("public"):
            keys = (
                WebhookEvent.objects.filter(
                    status__in=[WebhookEvent.Status.PENDING, WebhookEvent.Status.FAILED],
                    attempts__lt=MAX_EVENT_ATTEMPTS,
                )
                .values_list("entity_key", flat=True)
                .distinct()
            )
            processed = sum(webhook_events_process_for_key(key) for key in list(keys))
        return {"processed": processed}
