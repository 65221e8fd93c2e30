"""Celery tasks of budgets: the webhook post of a notification (never made by the proxy)."""

import logging

import httpx
from celery import shared_task

from proxy.budget_models import Notification, SpendSettings

logger = logging.getLogger(__name__)

WEBHOOK_TIMEOUT = 5.0


@shared_task(name="proxy.budgets.tasks.notification_webhook_post", acks_late=True)
def notification_webhook_post(notification_id: int) -> int:
    """POST a Slack-compatible {"text": ...} for one notification; returns the HTTP status."""
    notification = Notification.objects.filter(pk=notification_id).first()
    row = SpendSettings.objects.first()
    if notification is None or row is None or not row.webhook_url:
        return 0
    text = f"*{notification.title}*\n{notification.message}"
    try:
        response = httpx.post(
            row.webhook_url, json={"text": text}, timeout=WEBHOOK_TIMEOUT, follow_redirects=False
        )
    except httpx.HTTPError as exc:
        logger.warning("alert webhook failed: %s", type(exc).__name__)
        return 0
    if response.status_code >= 400:
        logger.warning("alert webhook answered %s", response.status_code)
    return response.status_code
