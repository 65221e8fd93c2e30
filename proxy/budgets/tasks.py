"""Celery tasks of budgets: the webhook post of a notification (never made by the proxy)."""

import ipaddress
import logging
import socket
from urllib.parse import urlsplit

import httpx
from celery import shared_task
from django.conf import settings

from proxy.budget_models import Notification, SpendSettings

logger = logging.getLogger(__name__)

WEBHOOK_TIMEOUT = 5.0


def webhook_target_allowed(url: str) -> bool:
    """Only public addresses: a tenant's URL must not reach our own network (SSRF)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return False
    if getattr(settings, "BUDGET_WEBHOOK_ALLOW_PRIVATE", False):
        return True
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    return all(ipaddress.ip_address(info[4][0]).is_global for info in infos)


@shared_task(name="proxy.budgets.tasks.notification_webhook_post", acks_late=True)
def notification_webhook_post(notification_id: int) -> int:
    """POST a Slack-compatible {"text": ...} for one notification; returns the HTTP status."""
    notification = Notification.objects.filter(pk=notification_id).first()
    row = SpendSettings.objects.first()
    if notification is None or row is None or not row.webhook_url:
        return 0
    if not webhook_target_allowed(row.webhook_url):
        logger.warning("alert webhook refused: not a public address")
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
