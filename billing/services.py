"""Billing writes: webhook storage and processing, subscription sync, entitlements, checkout,
cancellation and nightly reconciliation. Paddle's API is reached only through billing.paddle."""

import functools
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, ParamSpec, TypeVar

from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import Q
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django_tenants.utils import get_public_schema_name, schema_context, schema_exists

from accounts.models import Role, User
from audit.services import audit_event_record
from billing import paddle
from billing.models import (
    BillingAccount,
    BillingEmail,
    CheckoutIntent,
    PaddleEnvironment,
    PlanChange,
    PlanPrice,
    Subscription,
    WebhookEvent,
)
from tenants.models import Plan, Tenant
from tokenscope.lib.errors import DomainError

logger = logging.getLogger(__name__)

CHECKOUT_INTENT_TTL = timedelta(hours=2)
# A downgrade that shortens retention applies to purges only this long after the notice email.
RETENTION_NOTICE_DAYS = 7
MAX_EVENT_ATTEMPTS = 10
# Subscriptions that change plan through the API rather than a new checkout.
LIVE_STATUSES = frozenset({"active", "trialing"})
ENQUEUE_TIMEOUT_SECONDS = 2

SUBSCRIPTION_EVENTS = frozenset(
    {
        "subscription.created",
        "subscription.activated",
        "subscription.updated",
        "subscription.trialing",
        "subscription.past_due",
        "subscription.paused",
        "subscription.resumed",
        "subscription.canceled",
        "subscription.imported",
    }
)
TRANSACTION_EVENTS = frozenset(
    {"transaction.completed", "transaction.paid", "transaction.payment_failed"}
)
CUSTOMER_EVENTS = frozenset({"customer.updated"})
HANDLED_EVENTS = SUBSCRIPTION_EVENTS | TRANSACTION_EVENTS | CUSTOMER_EVENTS

P = ParamSpec("P")
R = TypeVar("R")


def in_public_schema(func: Callable[P, R]) -> Callable[P, R]:
    """Run a billing write in the public schema whatever schema the caller is in (billing is a
    shared app, and django-tenants refuses Tenant.save() from another tenant's schema)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with schema_context(get_public_schema_name()):
            return func(*args, **kwargs)

    return wrapper


class InvalidPayload(DomainError):
    """A signed webhook body that is not a Paddle event."""


# --- small parsing helpers ------------------------------------------------------------------


def _dt(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    parsed = parse_datetime(value)
    if parsed is not None and timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, UTC)
    return parsed


def _environment() -> str:
    return PaddleEnvironment.LIVE if settings.PADDLE_ENVIRONMENT == "live" else "sandbox"


def _entity_key(event_type: str, data: dict[str, Any]) -> str:
    entity = event_type.split(".", 1)[0]
    if entity == "subscription" and data.get("id"):
        return f"sub:{data['id']}"
    if entity == "transaction":
        if data.get("subscription_id"):
            return f"sub:{data['subscription_id']}"
        return f"txn:{data.get('id', '')}"
    if entity == "customer" and data.get("id"):
        return f"ctm:{data['id']}"
    return f"{entity}:{data.get('id', '')}"[:80]


@dataclass(frozen=True)
class SubscriptionSnapshot:
    """The fields we keep from a Paddle subscription entity (webhook data or API response)."""

    id: str
    status: str
    customer_id: str
    price_id: str
    period_starts_at: datetime | None
    period_ends_at: datetime | None
    scheduled_action: str
    scheduled_effective_at: datetime | None
    paused_at: datetime | None
    canceled_at: datetime | None
    updated_at: datetime | None
    checkout_intent_id: str

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> "SubscriptionSnapshot":
        items = data.get("items") or []
        price_id = ""
        for item in items:
            price = item.get("price") or {}
            if price.get("id"):
                price_id = price["id"]
                break
        period = data.get("current_billing_period") or {}
        scheduled = data.get("scheduled_change") or {}
        custom = data.get("custom_data") or {}
        status = data.get("status", "")
        if status not in Subscription.Status.values:
            raise InvalidPayload(f"Unknown subscription status {status!r}.")
        return cls(
            id=data["id"],
            status=status,
            customer_id=data.get("customer_id") or "",
            price_id=price_id,
            period_starts_at=_dt(period.get("starts_at")),
            period_ends_at=_dt(period.get("ends_at")),
            scheduled_action=scheduled.get("action") or "",
            scheduled_effective_at=_dt(scheduled.get("effective_at")),
            paused_at=_dt(data.get("paused_at")),
            canceled_at=_dt(data.get("canceled_at")),
            updated_at=_dt(data.get("updated_at")),
            checkout_intent_id=str(custom.get("checkout_intent_id") or ""),
        )


# --- webhook intake -------------------------------------------------------------------------


def webhook_event_store(body: bytes) -> WebhookEvent | None:
    """Parse a verified body and store it once by event_id; None when it was a duplicate.

    INSERT … ON CONFLICT (event_id) DO NOTHING, so concurrent deliveries of one event store one
    row and only the delivery that inserted it enqueues processing.
    """
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidPayload("The body is not JSON.") from exc
    if not isinstance(payload, dict):
        raise InvalidPayload("The body is not a JSON object.")
    event_id = payload.get("event_id")
    event_type = payload.get("event_type")
    occurred_at = _dt(payload.get("occurred_at"))
    data = payload.get("data")
    if not isinstance(event_id, str) or not event_id or len(event_id) > 64:
        raise InvalidPayload("No event_id.")
    if not isinstance(event_type, str) or not event_type or len(event_type) > 64:
        raise InvalidPayload("No event_type.")
    if occurred_at is None:
        raise InvalidPayload("No occurred_at.")
    if not isinstance(data, dict):
        raise InvalidPayload("No data object.")
    table = WebhookEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (event_id, event_type, occurred_at, notification_id, "  # noqa: S608
            "entity_key, payload, received_at, status, attempts, last_error, note) "
            "VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s, 0, '', '') "
            "ON CONFLICT (event_id) DO NOTHING RETURNING id",
            [
                event_id,
                event_type,
                occurred_at,
                str(payload.get("notification_id") or "")[:64],
                _entity_key(event_type, data),
                json.dumps(payload),
                timezone.now(),
                WebhookEvent.Status.PENDING,
            ],
        )
        row = cursor.fetchone()
    if row is None:
        logger.info("paddle webhook duplicate event_id=%s type=%s", event_id, event_type)
        return None
    logger.info("paddle webhook stored event_id=%s type=%s", event_id, event_type)
    return WebhookEvent.objects.get(pk=row[0])


def webhook_event_enqueue(event_pk: int) -> bool:
    """Hand an event to the worker; never raises and never waits long on the broker.

    Celery's default publish path retries a refused connection for seconds; Paddle allows 5 s
    for the whole answer. So: one connection attempt with 2-second socket timeouts, no publish
    retry. On failure the event stays pending and the nightly reconciliation processes it.
    """
    from billing.tasks import webhook_event_process
    from tokenscope.celery import app

    options = {
        **(app.conf.broker_transport_options or {}),
        "socket_connect_timeout": ENQUEUE_TIMEOUT_SECONDS,
        "socket_timeout": ENQUEUE_TIMEOUT_SECONDS,
    }
    try:
        with app.connection_for_write(transport_options=options) as conn:
            conn.ensure_connection(
                max_retries=1, interval_start=0, interval_step=0, timeout=ENQUEUE_TIMEOUT_SECONDS
            )
            webhook_event_process.apply_async(args=[event_pk], retry=False, connection=conn)
    except Exception as exc:  # broker down or unreachable: the event stays pending
        logger.warning(
            "paddle webhook enqueue failed event_pk=%s error=%s", event_pk, type(exc).__name__
        )
        return False
    return True


# --- processing -----------------------------------------------------------------------------


@in_public_schema
def webhook_events_process_for_key(entity_key: str) -> int:
    """Process every pending event of one entity in occurred_at order; returns how many ran.

    A session-level advisory lock keeps two workers from interleaving one subscription's events;
    each event runs in its own transaction and any Paddle API call happens outside of them.
    """
    processed = 0
    seen: set[int] = set()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(hashtext(%s))", [f"billing:{entity_key}"])
    try:
        while True:
            event = (
                WebhookEvent.objects.filter(
                    entity_key=entity_key,
                    status__in=[WebhookEvent.Status.PENDING, WebhookEvent.Status.FAILED],
                    attempts__lt=MAX_EVENT_ATTEMPTS,
                )
                .exclude(pk__in=seen)
                .order_by("occurred_at", "id")
                .first()
            )
            if event is None:
                return processed
            seen.add(event.pk)
            webhook_event_process(event)
            processed += 1
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [f"billing:{entity_key}"])


def webhook_event_process(event: WebhookEvent) -> str:
    """Apply one stored event; records the outcome, attempts and last error on the row."""
    WebhookEvent.objects.filter(pk=event.pk).update(attempts=event.attempts + 1)
    event.attempts += 1
    try:
        if event.event_type in SUBSCRIPTION_EVENTS:
            status, note = _subscription_event_apply(event)
        elif event.event_type in TRANSACTION_EVENTS:
            status, note = _transaction_event_apply(event)
        elif event.event_type in CUSTOMER_EVENTS:
            status, note = _customer_event_apply(event)
        else:
            status, note = WebhookEvent.Status.IGNORED, "event type not handled"
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        WebhookEvent.objects.filter(pk=event.pk).update(
            status=WebhookEvent.Status.FAILED, last_error=error
        )
        logger.exception("paddle event failed event_id=%s", event.event_id)
        return WebhookEvent.Status.FAILED
    WebhookEvent.objects.filter(pk=event.pk).update(
        status=status, note=note[:200], processed_at=timezone.now(), last_error=""
    )
    return status


def _subscription_event_apply(event: WebhookEvent) -> tuple[str, str]:
    data = event.payload["data"]
    occurred_at = event.occurred_at
    known = Subscription.objects.filter(paddle_subscription_id=data.get("id", "")).exists()
    source = "event"
    if not known and event.event_type != "subscription.created":
        # In doubt (an activated/updated before created, or a gap): ask Paddle for the truth.
        try:
            data = paddle.subscription_fetch(data["id"])
        except paddle.PaddleUnavailable:
            logger.warning("paddle refetch failed; applying event data event=%s", event.event_id)
        else:
            source = "api"
            fetched_updated = _dt(data.get("updated_at"))
            if fetched_updated and fetched_updated > occurred_at:
                occurred_at = fetched_updated
    outcome = subscription_sync(data, occurred_at=occurred_at, source=source)
    return _outcome_status(outcome)


def _outcome_status(outcome: str) -> tuple[str, str]:
    if outcome == "stale":
        return WebhookEvent.Status.SKIPPED_STALE, "older than the subscription's last event"
    if outcome == "no_tenant":
        return WebhookEvent.Status.IGNORED, "no tenant for this subscription"
    return WebhookEvent.Status.PROCESSED, outcome


def _intent_tenant(intent_id: str, *, subscription_id: str, at: datetime) -> Tenant | None:
    """The tenant of a valid checkout intent; marks it used by this subscription."""
    try:
        intent_uuid = uuid.UUID(intent_id)
    except ValueError:
        return None
    intent = (
        CheckoutIntent.objects.select_for_update()
        .select_related("tenant")
        .filter(pk=intent_uuid)
        .first()
    )
    if intent is None:
        return None
    if intent.used_at is not None:
        return intent.tenant if intent.paddle_subscription_id == subscription_id else None
    if intent.expires_at < at:
        logger.warning("paddle checkout intent expired intent=%s", intent.pk)
        return None
    intent.used_at = timezone.now()
    intent.paddle_subscription_id = subscription_id
    intent.save(update_fields=["used_at", "paddle_subscription_id"])
    return intent.tenant


@in_public_schema
def subscription_sync(data: dict[str, Any], *, occurred_at: datetime, source: str = "event") -> str:
    """Upsert our copy of a Paddle subscription unless `occurred_at` is older than its watermark.

    Returns "stale", "no_tenant", or "applied"; re-derives the tenant's plan after commit.
    """
    snap = SubscriptionSnapshot.from_data(data)
    with transaction.atomic():
        sub = (
            Subscription.objects.select_for_update().filter(paddle_subscription_id=snap.id).first()
        )
        if sub and sub.last_event_occurred_at and occurred_at < sub.last_event_occurred_at:
            return "stale"
        tenant = sub.tenant if sub else None
        if tenant is None:
            tenant = _intent_tenant(
                snap.checkout_intent_id, subscription_id=snap.id, at=occurred_at
            )
        if tenant is None and snap.customer_id:
            account = BillingAccount.objects.filter(paddle_customer_id=snap.customer_id).first()
            tenant = account.tenant if account else None
        if sub is None:
            sub = Subscription(paddle_subscription_id=snap.id, environment=_environment())
        was_past_due = sub.status == Subscription.Status.PAST_DUE
        sub.tenant = tenant
        sub.paddle_customer_id = snap.customer_id
        sub.status = snap.status
        sub.paddle_price_id = snap.price_id
        price = PlanPrice.objects.filter(paddle_price_id=snap.price_id).select_related("plan")
        plan_price = price.first()
        if plan_price is not None:
            sub.plan = plan_price.plan
        elif snap.price_id:
            logger.warning("paddle price unknown price=%s sub=%s", snap.price_id, snap.id)
        sub.current_period_starts_at = snap.period_starts_at
        sub.current_period_ends_at = snap.period_ends_at
        sub.scheduled_change_action = snap.scheduled_action
        sub.scheduled_change_effective_at = snap.scheduled_effective_at
        if snap.status == Subscription.Status.PAST_DUE:
            if not was_past_due or sub.past_due_since is None:
                sub.past_due_since = occurred_at
        else:
            sub.past_due_since = None
        sub.paused_at = snap.paused_at
        sub.canceled_at = snap.canceled_at
        sub.last_event_occurred_at = max(occurred_at, sub.last_event_occurred_at or occurred_at)
        if source == "api":
            sub.synced_from_api_at = timezone.now()
        sub.save()
        if tenant is not None and snap.customer_id:
            account, _ = BillingAccount.objects.get_or_create(tenant=tenant)
            if account.paddle_customer_id != snap.customer_id:
                account.paddle_customer_id = snap.customer_id
                account.save(update_fields=["paddle_customer_id", "updated_at"])
                _customer_backfill(account)
    if tenant is None:
        logger.info("paddle subscription without tenant sub=%s", snap.id)
        return "no_tenant"
    tenant_entitlement_apply(tenant)
    return "applied"


def _event_tenant(data: dict[str, Any]) -> Tenant | None:
    sub_id = data.get("subscription_id") or ""
    if sub_id:
        sub = Subscription.objects.filter(paddle_subscription_id=sub_id).first()
        if sub is not None and sub.tenant is not None:
            return sub.tenant
    customer_id = data.get("customer_id") or ""
    if customer_id:
        account = BillingAccount.objects.filter(paddle_customer_id=customer_id).first()
        if account is not None:
            return account.tenant
    # A checkout's first transaction carries the checkout's customData.
    intent_id = str((data.get("custom_data") or {}).get("checkout_intent_id") or "")
    try:
        intent_uuid = uuid.UUID(intent_id)
    except ValueError:
        return None
    intent = CheckoutIntent.objects.filter(pk=intent_uuid).select_related("tenant").first()
    return intent.tenant if intent is not None else None


def _transaction_event_apply(event: WebhookEvent) -> tuple[str, str]:
    data = event.payload["data"]
    sub_id = data.get("subscription_id") or ""
    if sub_id and not Subscription.objects.filter(paddle_subscription_id=sub_id).exists():
        # The subscription's own events have not arrived yet: fetch it so the link exists.
        try:
            fetched = paddle.subscription_fetch(sub_id)
        except paddle.PaddleUnavailable:
            logger.warning("paddle refetch failed for transaction event=%s", event.event_id)
        else:
            updated = _dt(fetched.get("updated_at")) or event.occurred_at
            subscription_sync(fetched, occurred_at=updated, source="api")
    tenant = _event_tenant(data)
    if tenant is None:
        return WebhookEvent.Status.IGNORED, "no tenant for this transaction"
    txn_id = str(data.get("id") or "")
    if event.event_type in {"transaction.completed", "transaction.paid"}:
        sent = billing_email_send_once(
            tenant,
            key=f"payment_received:{txn_id}",
            subject="Payment received",
            template="billing/emails/payment_received.txt",
            context={"transaction": _transaction_summary(data)},
        )
        return WebhookEvent.Status.PROCESSED, "payment received email" + ("" if sent else " (sent)")
    day = event.occurred_at.date().isoformat()
    sent = billing_email_send_once(
        tenant,
        key=f"payment_failed:{txn_id}:{day}",
        subject="Payment failed",
        template="billing/emails/payment_failed.txt",
        context={"transaction": _transaction_summary(data)},
    )
    return WebhookEvent.Status.PROCESSED, "payment failed email" + ("" if sent else " (sent)")


def _customer_event_apply(event: WebhookEvent) -> tuple[str, str]:
    data = event.payload["data"]
    with transaction.atomic():
        account = (
            BillingAccount.objects.select_for_update()
            .filter(paddle_customer_id=data.get("id") or "-")
            .first()
        )
        if account is None:
            return WebhookEvent.Status.IGNORED, "no tenant for this customer"
        if account.customer_updated_at and event.occurred_at < account.customer_updated_at:
            return WebhookEvent.Status.SKIPPED_STALE, "older than the customer's last event"
        account.billing_email = (data.get("email") or "")[:254]
        account.billing_name = (data.get("name") or "")[:200]
        account.customer_updated_at = event.occurred_at
        account.save()
    return WebhookEvent.Status.PROCESSED, "billing contact updated"


def _customer_backfill(account: BillingAccount) -> None:
    """A customer.updated that came before the customer was linked: apply the latest one now."""
    latest = (
        WebhookEvent.objects.filter(
            entity_key=f"ctm:{account.paddle_customer_id}", event_type__in=CUSTOMER_EVENTS
        )
        .order_by("-occurred_at")
        .first()
    )
    if latest is None:
        return
    data = latest.payload.get("data") or {}
    account.billing_email = (data.get("email") or "")[:254]
    account.billing_name = (data.get("name") or "")[:200]
    account.customer_updated_at = latest.occurred_at
    account.save()


def _transaction_summary(data: dict[str, Any]) -> dict[str, Any]:
    totals = (data.get("details") or {}).get("totals") or {}
    return {
        "id": data.get("id", ""),
        "invoice_number": data.get("invoice_number") or "",
        "currency": data.get("currency_code") or totals.get("currency_code") or "",
        "total": money_format(totals.get("grand_total"), data.get("currency_code") or ""),
        "billed_at": _dt(data.get("billed_at")),
    }


ZERO_DECIMAL_CURRENCIES = frozenset({"JPY", "KRW"})


def money_format(amount: Any, currency: str) -> str:
    """Paddle amounts are strings in the lowest unit ("1999" = 19.99 USD); exact, no floats."""
    try:
        value = Decimal(str(amount))
    except (InvalidOperation, TypeError):
        return ""
    if currency.upper() not in ZERO_DECIMAL_CURRENCIES:
        value = value / Decimal(100)
        return f"{value:.2f} {currency}".strip()
    return f"{value:.0f} {currency}".strip()


# --- emails ---------------------------------------------------------------------------------


def tenant_owner_emails(tenant: Tenant) -> list[str]:
    with schema_context(tenant.schema_name):
        return list(
            User.objects.filter(role=Role.OWNER, is_active=True)
            .order_by("pk")
            .values_list("email", flat=True)
        )


def billing_contact_emails(tenant: Tenant) -> list[str]:
    """The billing contact from Paddle's customer, else the tenant's owners."""
    account = BillingAccount.objects.filter(tenant=tenant).first()
    if account is not None and account.billing_email:
        return [account.billing_email]
    return tenant_owner_emails(tenant)


def billing_email_send_once(
    tenant: Tenant,
    *,
    key: str,
    subject: str,
    template: str,
    context: dict[str, Any],
    recipients: list[str] | None = None,
) -> bool:
    """Send one of our billing emails once per key (after commit); False if already sent."""
    recipients = recipients if recipients is not None else billing_contact_emails(tenant)
    if not recipients:
        return False
    with transaction.atomic():
        _, created = BillingEmail.objects.get_or_create(
            key=key[:120], defaults={"tenant": tenant, "sent_at": timezone.now()}
        )
        if not created:
            return False
        body = render_to_string(template, {"tenant": tenant, **context})
        transaction.on_commit(
            lambda: send_mail(f"[TokenScope] {subject} · {tenant.name}", body, None, recipients)
        )
    return True


# --- entitlements ---------------------------------------------------------------------------


def tenant_subscription_current(tenant: Tenant) -> Subscription | None:
    """The subscription that decides the plan: a live one first, else the latest."""
    subs = list(Subscription.objects.filter(tenant=tenant).select_related("plan"))
    live = [s for s in subs if s.status != Subscription.Status.CANCELED]
    pool = live or subs
    return max(pool, key=lambda s: s.created_at) if pool else None


def entitled_plan(sub: Subscription, *, now: datetime) -> tuple[Plan | None, str]:
    """The plan a subscription's state entitles to, and why (None: leave the plan alone)."""
    if sub.plan is None:
        return None, "price not mapped to a plan"
    free = Plan.objects.get(slug=Plan.Slug.FREE)
    status = sub.status
    if status in {Subscription.Status.ACTIVE, Subscription.Status.TRIALING}:
        return sub.plan, f"subscription {status}"
    if status == Subscription.Status.PAST_DUE:
        since = sub.past_due_since or now
        grace_end = since + timedelta(days=settings.PADDLE_PAST_DUE_GRACE_DAYS)
        if now < grace_end:
            return sub.plan, f"past due, grace until {grace_end:%Y-%m-%d %H:%M} UTC"
        return free, "past due beyond the grace period"
    end = sub.scheduled_change_effective_at or sub.current_period_ends_at
    if end is not None and now < end:
        return sub.plan, f"{status}, paid until {end:%Y-%m-%d %H:%M} UTC"
    return free, f"subscription {status}"


@in_public_schema
def tenant_entitlement_apply(tenant: Tenant, *, now: datetime | None = None) -> PlanChange | None:
    """Derive the tenant's plan from its subscription and change Tenant.plan with an audit trail.

    A change that shortens retention keeps the old retention for purges during a notice period
    (BillingAccount.retention_floor_*) and emails the tenant's owners at once.
    """
    now = now or timezone.now()
    if tenant.status == Tenant.Status.DELETING:
        return None
    account = BillingAccount.objects.filter(tenant=tenant).first()
    if account is not None and account.plan_managed_manually:
        return None
    sub = tenant_subscription_current(tenant)
    if sub is None:
        return None
    target, reason = entitled_plan(sub, now=now)
    if target is None or target.pk == tenant.plan_id:
        return None
    with transaction.atomic():
        locked = Tenant.objects.select_for_update().select_related("plan").get(pk=tenant.pk)
        if locked.plan_id == target.pk:
            return None
        old_plan = locked.plan
        old_retention = locked.retention_days
        locked.plan = target
        locked.save(update_fields=["plan"])
        change = PlanChange.objects.create(
            tenant=locked,
            tenant_slug=locked.slug,
            old_plan=old_plan,
            new_plan=target,
            reason=reason[:200],
            subscription=sub,
            changed_at=now,
        )
        new_retention = locked.retention_days
        account, _ = BillingAccount.objects.select_for_update().get_or_create(tenant=locked)
        if new_retention < old_retention:
            floor = old_retention
            if account.retention_floor_until and account.retention_floor_until > now:
                floor = max(floor, account.retention_floor_days or 0)
            account.retention_floor_days = floor
            account.retention_floor_until = now + timedelta(days=RETENTION_NOTICE_DAYS)
            account.retention_notice_sent_at = now
            account.save()
            _retention_notice_send(locked, old_retention, new_retention, account, change)
        elif account.retention_floor_days and new_retention >= account.retention_floor_days:
            account.retention_floor_days = None
            account.retention_floor_until = None
            account.save()
        with schema_context(locked.schema_name):
            audit_event_record(
                None,
                action="billing.plan_changed",
                object_type="tenant",
                object_id=locked.short_id,
                object_repr=locked.name,
                changes={"plan": [old_plan.slug, target.slug], "reason": reason},
            )
    tenant.plan = target
    logger.info(
        "billing plan changed tenant=%s %s->%s reason=%s",
        tenant.slug,
        old_plan.slug,
        target.slug,
        reason,
    )
    return change


def _retention_notice_send(
    tenant: Tenant, old_days: int, new_days: int, account: BillingAccount, change: PlanChange
) -> None:
    recipients = tenant_owner_emails(tenant)
    if not recipients:
        return
    billing_email_send_once(
        tenant,
        key=f"retention_notice:{change.pk}",
        subject="Your data retention is getting shorter",
        template="billing/emails/retention_notice.txt",
        context={
            "old_days": old_days,
            "new_days": new_days,
            "applies_from": account.retention_floor_until,
            "new_plan": change.new_plan,
        },
        recipients=recipients,
    )


@in_public_schema
def entitlements_refresh(*, now: datetime | None = None) -> list[str]:
    """Re-derive plans that time alone can change (grace ends, paid periods end)."""
    changed = []
    tenant_ids = (
        Subscription.objects.exclude(tenant=None).values_list("tenant_id", flat=True).distinct()
    )
    for tenant in Tenant.objects.filter(pk__in=list(tenant_ids)).select_related("plan"):
        if tenant_entitlement_apply(tenant, now=now) is not None:
            changed.append(tenant.slug)
    return changed


# --- checkout, portal, cancellation ---------------------------------------------------------


@in_public_schema
def checkout_intent_create(
    tenant: Tenant, *, plan_price: PlanPrice, actor: User, request: HttpRequest | None = None
) -> CheckoutIntent:
    """A single-use, expiring id for Paddle.js's customData (never a raw tenant id)."""
    if not actor.has_role(Role.ADMIN):
        raise DomainError("Only owners and admins can change the plan.")
    if not plan_price.is_active or plan_price.environment != _environment():
        raise DomainError("This price is not offered.")
    current = tenant_subscription_current(tenant)
    if current is not None and current.status != Subscription.Status.CANCELED:
        raise DomainError("This workspace already has a subscription; switch its plan instead.")
    with transaction.atomic():
        intent = CheckoutIntent.objects.create(
            tenant=tenant,
            plan_price=plan_price,
            created_by_email=actor.email,
            expires_at=timezone.now() + CHECKOUT_INTENT_TTL,
        )
        with schema_context(tenant.schema_name):
            audit_event_record(
                actor,
                action="billing.checkout_started",
                object_type="checkout_intent",
                object_id=intent.pk,
                object_repr=str(plan_price),
                request=request,
            )
    return intent


@in_public_schema
def portal_session_url(tenant: Tenant, *, actor: User, request: HttpRequest | None = None) -> str:
    """A fresh Paddle customer portal link for the tenant (one API call per click)."""
    if not actor.has_role(Role.ADMIN):
        raise DomainError("Only owners and admins can manage billing.")
    account = BillingAccount.objects.filter(tenant=tenant).first()
    if account is None or not account.paddle_customer_id:
        raise DomainError("There is no Paddle customer for this workspace yet.")
    sub_ids = list(
        Subscription.objects.filter(tenant=tenant)
        .exclude(status=Subscription.Status.CANCELED)
        .values_list("paddle_subscription_id", flat=True)
    )
    try:
        url = paddle.portal_session_url(account.paddle_customer_id, sub_ids)
    except paddle.PaddleUnavailable as exc:
        raise DomainError("Paddle's customer portal is unavailable; try again shortly.") from exc
    with schema_context(tenant.schema_name):
        audit_event_record(
            actor,
            action="billing.portal_opened",
            object_type="tenant",
            object_id=tenant.short_id,
            object_repr=tenant.name,
            request=request,
        )
    return url


@in_public_schema
def subscription_plan_change(
    tenant: Tenant, *, plan_price: PlanPrice, actor: User, request: HttpRequest | None = None
) -> Subscription:
    """Move the tenant's active subscription to another price through Paddle's API (prorated).

    A tenant that already pays changes plan this way, never through a second checkout.
    """
    if not actor.has_role(Role.ADMIN):
        raise DomainError("Only owners and admins can change the plan.")
    if not plan_price.is_active or plan_price.environment != _environment():
        raise DomainError("This price is not offered.")
    sub = tenant_subscription_current(tenant)
    if sub is None or sub.status not in LIVE_STATUSES:
        raise DomainError("There is no active subscription to change.")
    if sub.paddle_price_id == plan_price.paddle_price_id:
        raise DomainError("This is already your plan.")
    try:
        data = paddle.subscription_change_price(
            sub.paddle_subscription_id, plan_price.paddle_price_id
        )
    except paddle.PaddleUnavailable as exc:
        raise DomainError("Paddle could not change the plan; nothing was changed.") from exc
    updated = _dt(data.get("updated_at")) or timezone.now()
    subscription_sync(data, occurred_at=updated, source="api")
    with schema_context(tenant.schema_name):
        audit_event_record(
            actor,
            action="billing.plan_change_requested",
            object_type="subscription",
            object_id=sub.paddle_subscription_id,
            object_repr=str(plan_price),
            request=request,
            changes={"price": [sub.paddle_price_id, plan_price.paddle_price_id]},
        )
    sub.refresh_from_db()
    return sub


@in_public_schema
def subscription_cancel(tenant: Tenant, *, reason: str, immediately: bool = True) -> list[str]:
    """Cancel every live Paddle subscription of the tenant through Paddle's API.

    `immediately=True` (account deletion) ends them now; False cancels at the period's end.
    Returns the ids cancelled; raises DomainError when Paddle's API fails (nothing is hidden).
    Our copy is updated from the API's answer; the webhooks that follow are then idempotent.
    """
    subs = list(
        Subscription.objects.filter(tenant=tenant).exclude(status=Subscription.Status.CANCELED)
    )
    cancelled = []
    for sub in subs:
        try:
            data = paddle.subscription_cancel_remote(
                sub.paddle_subscription_id, immediately=immediately
            )
        except paddle.PaddleUnavailable as exc:
            raise DomainError(
                f"Could not cancel subscription {sub.paddle_subscription_id}: {exc}"
            ) from exc
        updated = _dt(data.get("updated_at")) or timezone.now()
        subscription_sync(data, occurred_at=updated, source="api")
        cancelled.append(sub.paddle_subscription_id)
        logger.info(
            "billing subscription cancelled sub=%s tenant=%s immediately=%s reason=%s",
            sub.paddle_subscription_id,
            tenant.slug,
            immediately,
            reason,
        )
    if cancelled and schema_exists(tenant.schema_name):
        with schema_context(tenant.schema_name):
            audit_event_record(
                None,
                action="billing.subscription_cancelled",
                object_type="tenant",
                object_id=tenant.short_id,
                object_repr=tenant.name,
                changes={"subscriptions": cancelled, "reason": reason, "immediately": immediately},
            )
    return cancelled


# --- reconciliation -------------------------------------------------------------------------


def _drifted(sub: Subscription | None, snap: SubscriptionSnapshot) -> list[str]:
    if sub is None:
        return ["missing"]
    pairs = {
        "status": (sub.status, snap.status),
        "price": (sub.paddle_price_id, snap.price_id),
        "customer": (sub.paddle_customer_id, snap.customer_id),
        "period_end": (sub.current_period_ends_at, snap.period_ends_at),
        "scheduled_change": (
            (sub.scheduled_change_action, sub.scheduled_change_effective_at),
            (snap.scheduled_action, snap.scheduled_effective_at),
        ),
    }
    return [name for name, (ours, theirs) in pairs.items() if ours != theirs]


@in_public_schema
def billing_reconcile(*, now: datetime | None = None) -> dict[str, Any]:
    """Compare every Paddle subscription with ours, repair drift, retry stuck events, re-derive
    plans; returns (and logs) a summary of what it fixed."""
    started = now or timezone.now()
    summary: dict[str, Any] = {
        "subscriptions_seen": 0,
        "repaired": [],
        "api_error": "",
        "events_retried": 0,
        "events_still_failing": 0,
        "plans_changed": [],
    }
    try:
        for data in paddle.subscriptions_iter():
            summary["subscriptions_seen"] += 1
            try:
                snap = SubscriptionSnapshot.from_data(data)
            except (InvalidPayload, KeyError):
                continue
            sub = Subscription.objects.filter(paddle_subscription_id=snap.id).first()
            drift = _drifted(sub, snap)
            if not drift:
                continue
            outcome = subscription_sync(data, occurred_at=started, source="api")
            if outcome != "stale":
                summary["repaired"].append({"subscription": snap.id, "fields": drift})
    except paddle.PaddleUnavailable as exc:
        summary["api_error"] = str(exc)
    keys = (
        WebhookEvent.objects.filter(
            status__in=[WebhookEvent.Status.PENDING, WebhookEvent.Status.FAILED],
            attempts__lt=MAX_EVENT_ATTEMPTS,
        )
        .values_list("entity_key", flat=True)
        .distinct()
    )
    for key in list(keys):
        summary["events_retried"] += webhook_events_process_for_key(key)
    summary["events_still_failing"] = WebhookEvent.objects.filter(
        status=WebhookEvent.Status.FAILED
    ).count()
    summary["plans_changed"] = entitlements_refresh(now=now)
    summary["payloads_scrubbed"] = webhook_payloads_scrub(now=now)
    logger.info("billing reconcile summary=%s", json.dumps(summary, default=str))
    return summary


# Payloads carry customer names and emails; Paddle itself keeps notifications 90 days.
WEBHOOK_PAYLOAD_RETENTION = timedelta(days=90)


@in_public_schema
def webhook_payloads_scrub(*, now: datetime | None = None) -> int:
    """Empty the payloads of settled events older than the retention; ids, types, times and
    outcomes stay for the record."""
    cutoff = (now or timezone.now()) - WEBHOOK_PAYLOAD_RETENTION
    return (
        WebhookEvent.objects.filter(received_at__lt=cutoff)
        .exclude(status=WebhookEvent.Status.PENDING)
        .exclude(payload={})
        .update(payload={})
    )


@in_public_schema
def webhook_payloads_scrub_for_tenant(tenant: Tenant) -> dict[str, int]:
    """On account purge: empty the payloads of every event about the tenant's subscriptions or
    Paddle customer (they are tied to it by Paddle ids, not by a foreign key)."""
    subscriptions = Subscription.objects.filter(tenant=tenant)
    keys = [f"sub:{sid}" for sid in subscriptions.values_list("paddle_subscription_id", flat=True)]
    customers = set(subscriptions.values_list("paddle_customer_id", flat=True))
    account = BillingAccount.objects.filter(tenant=tenant).first()
    if account is not None:
        customers.add(account.paddle_customer_id)
    customers.discard("")
    about_tenant = Q(entity_key__in=keys) | Q(entity_key__in=[f"ctm:{c}" for c in customers])
    about_tenant |= Q(payload__data__customer_id__in=list(customers))
    scrubbed = WebhookEvent.objects.filter(about_tenant).exclude(payload={}).update(payload={})
    return {"billing.WebhookEvent payloads scrubbed": scrubbed}


@in_public_schema
def webhook_event_replay(event: WebhookEvent) -> str:
    """Operator action: process a stored event again (idempotent: emails go once per key)."""
    WebhookEvent.objects.filter(pk=event.pk).update(status=WebhookEvent.Status.PENDING)
    event.refresh_from_db()
    return webhook_event_process(event)
