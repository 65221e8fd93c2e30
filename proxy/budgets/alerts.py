"""Threshold alerts (exactly once per budget, period and threshold) and operational notices.

Each alert is a unique BudgetAlert row: however many requests cross a threshold at once, one
insert wins and only that one sends the email, the in-app notification and the webhook post
(a Celery task, after commit). Notices are rate-limited per tenant and kind.
"""

import logging
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.core.cache import cache
from django.core.mail import send_mail
from django.db import IntegrityError, close_old_connections, transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts.models import Role, User
from proxy.budget_models import Budget, BudgetAlert, Notification, SpendSettings
from proxy.budgets.rules import nano_to_usd

if TYPE_CHECKING:
    from proxy.budgets.enforcer import BudgetEnforcer, Counter
    from tenants.models import Tenant

logger = logging.getLogger(__name__)

NOTICE_INTERVAL = timedelta(hours=1)
NOTICE_KINDS = frozenset({"unpriced_model", "upstream_key_rejected", "key_vault_unreachable"})


def admin_emails() -> list[str]:
    """Owners and admins of the current tenant schema."""
    return list(
        User.objects.filter(is_active=True, role__in=[Role.OWNER, Role.ADMIN])
        .order_by("email")
        .values_list("email", flat=True)
    )


def budget_recipients(budget: Budget) -> list[str]:
    recipients = admin_emails()
    center = budget.cost_center if budget.scope == Budget.Scope.COST_CENTER else None
    if center is not None and center.owner_email:
        recipients.append(center.owner_email)
    recipients += budget.extra_recipient_list
    return sorted({address.lower(): address for address in recipients}.values())


def _deliver(notification: Notification, recipients: list[str]) -> None:
    """Email and webhook after the notification is committed."""
    subject = f"[TokenScope] {notification.title}"
    body = notification.message
    notification_id = notification.pk

    def send() -> None:
        if recipients:
            try:
                send_mail(subject, body, None, recipients)
            except Exception:
                logger.exception("alert email failed for notification %s", notification_id)
        settings_row = SpendSettings.objects.first()
        if settings_row and settings_row.webhook_url:
            webhook_enqueue(notification_id)

    transaction.on_commit(send)


def webhook_enqueue(notification_id: int) -> None:
    """Queue the webhook post; the proxy never makes it itself."""
    from proxy.budgets.tasks import notification_webhook_post

    try:
        notification_webhook_post.apply_async(args=[notification_id], retry=False)
    except Exception as exc:  # broker down: the in-app notification and email still stand
        logger.warning("webhook enqueue failed: %s", type(exc).__name__)


def _period_text(budget: Budget, start: Any, end: Any, tz: str) -> str:
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz)
    return (
        f"{timezone.localtime(start, zone):%Y-%m-%d %H:%M} – "
        f"{timezone.localtime(end, zone):%Y-%m-%d %H:%M} ({tz})"
    )


def budget_alert_record(
    *, budget: Budget, period_start: Any, period_end: Any, threshold: int, spent: Decimal, tz: str
) -> bool:
    """Record and send one threshold alert; False if it was already sent this period."""
    try:
        with transaction.atomic():
            _, created = BudgetAlert.objects.get_or_create(
                budget=budget,
                period_start=period_start,
                threshold=threshold,
                defaults={"spent_usd": spent},
            )
            if not created:
                return False
            amount = budget.amount_usd
            title = f"Budget {budget.name!r} reached {threshold} %"
            action = (
                "Requests that could exceed it are refused until it resets."
                if budget.block and threshold >= 100
                else "Requests still go through."
            )
            notification = Notification.objects.create(
                kind="budget_threshold",
                budget=budget,
                title=title,
                message=(
                    f"Budget {budget.name!r} has used USD {spent:.2f} of USD {amount:.2f} "
                    f"({threshold} % threshold) for the {budget.period} "
                    f"{_period_text(budget, period_start, period_end, tz)}. {action}"
                ),
            )
            _deliver(notification, budget_recipients(budget))
    except IntegrityError:
        return False
    return True


def _fire(
    enforcer: "BudgetEnforcer", schema: str, counter: "Counter", threshold: int, spent: int
) -> None:
    rule = counter.rule
    assert rule is not None
    marker = (schema, rule.id, counter.window.key, threshold)
    if not enforcer.alert_once_in_process(marker):
        return
    from tenants.models import Tenant

    try:
        close_old_connections()
        tz = Tenant.objects.only("time_zone").get(schema_name=schema).time_zone
        with schema_context(schema):
            budget = Budget.objects.select_related("cost_center").filter(pk=rule.id).first()
            if budget is None:
                return
            budget_alert_record(
                budget=budget,
                period_start=counter.window.start,
                period_end=counter.window.end,
                threshold=threshold,
                spent=nano_to_usd(spent),
                tz=tz,
            )
    except Exception:
        enforcer.alert_forget(marker)  # try again at the next settlement
        raise


def budget_threshold_alerts(
    enforcer: "BudgetEnforcer", schema: str, counter: "Counter", spent_nano: int
) -> None:
    """Alert for every threshold the settled spend has reached (each once per period)."""
    rule = counter.rule
    assert rule is not None
    for threshold in rule.thresholds:
        if spent_nano * 100 >= threshold * rule.amount_nano:
            _fire(enforcer, schema, counter, threshold, spent_nano)


def budget_refusal_alert(
    enforcer: "BudgetEnforcer", schema: str, counter: "Counter", spent_nano: int
) -> None:
    """A blocking budget refused a request: it is exhausted, so its 100 % alert goes out."""
    rule = counter.rule
    assert rule is not None
    reached = [t for t in rule.thresholds if t <= 100]
    if reached:
        _fire(enforcer, schema, counter, max(reached), spent_nano)


def notice_send(tenant: "Tenant", kind: str, message: str) -> bool:
    """Tell the tenant's admins about an operational problem (email, in-app, webhook).

    `kind` is e.g. "unpriced_model", "upstream_key_rejected", "key_vault_unreachable". At most
    one notice per tenant and kind per hour. `message` must not contain secrets or prompt text.
    Synchronous (database): call it from a worker thread or a task, never on the event loop.
    Returns True if a notice was sent.
    """
    close_old_connections()
    with schema_context(tenant.schema_name):
        since = timezone.now() - NOTICE_INTERVAL
        try:
            fresh = cache.add(f"notice:{kind}", "1", int(NOTICE_INTERVAL.total_seconds()))
        except Exception:  # Redis down: the database says whether one went out lately
            fresh = not Notification.objects.filter(kind=kind, created_at__gte=since).exists()
        if not fresh:
            return False
        titles = {
            "unpriced_model": "A model without a price was used",
            "upstream_key_rejected": "Anthropic rejected this workspace's API key",
            "key_vault_unreachable": "The key vault is unreachable",
        }
        with transaction.atomic():
            notification = Notification.objects.create(
                kind=kind[:40], title=titles.get(kind, "Operational notice"), message=message
            )
            _deliver(notification, admin_emails())
    return True
