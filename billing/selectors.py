"""Billing reads for pages and for other apps (privacy's purge reads the retention floor)."""

import uuid
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from billing import paddle
from billing.models import BillingAccount, CheckoutIntent, PlanPrice, Subscription
from billing.services import LIVE_STATUSES, money_format, tenant_subscription_current
from tenants.models import Plan, Tenant


def tenant_retention_days_for_purge(tenant: Tenant, *, now: datetime | None = None) -> int:
    """The retention the purge must honour today: the tenant's retention, but never less than
    the pre-downgrade retention while a downgrade's notice period runs."""
    now = now or timezone.now()
    days = tenant.retention_days
    account = BillingAccount.objects.filter(tenant=tenant).first()
    if (
        account is not None
        and account.retention_floor_days
        and account.retention_floor_until
        and now < account.retention_floor_until
    ):
        return max(days, account.retention_floor_days)
    return days


def plan_prices_offered() -> list[PlanPrice]:
    environment = "live" if settings.PADDLE_ENVIRONMENT == "live" else "sandbox"
    return list(
        PlanPrice.objects.filter(is_active=True, environment=environment)
        .select_related("plan")
        .order_by("plan__sort_order", "interval")
    )


def billing_overview(tenant: Tenant) -> dict[str, Any]:
    """What the Billing page shows about the tenant's plan and subscription (no API calls)."""
    account = BillingAccount.objects.filter(tenant=tenant).first()
    subscription = tenant_subscription_current(tenant)
    paying = subscription is not None and subscription.status in LIVE_STATUSES
    # A canceled (or no) subscription buys through checkout; a paying one changes its price;
    # past-due or paused subscriptions are sorted out in Paddle's portal first.
    blocked = subscription is not None and not paying and subscription.status != "canceled"
    return {
        "plan": tenant.plan,
        "can_checkout": subscription is None or subscription.status == "canceled",
        "can_change_plan": paying,
        "plan_change_blocked": blocked,
        "plans": list(Plan.objects.all()),
        "subscription": subscription,
        "account": account,
        "retention_days": tenant.retention_days,
        "retention_floor": (
            account
            if account
            and account.retention_floor_until
            and account.retention_floor_until > timezone.now()
            else None
        ),
        "prices": plan_prices_offered(),
    }


def tenant_invoices(tenant: Tenant) -> tuple[list[dict[str, Any]], str]:
    """The tenant's recent Paddle transactions as invoice rows, and an error message if any."""
    account = BillingAccount.objects.filter(tenant=tenant).first()
    if account is None or not account.paddle_customer_id:
        return [], ""
    try:
        rows = paddle.transactions_list(account.paddle_customer_id)
    except paddle.PaddleUnavailable:
        return [], "Invoices are unavailable right now; try again shortly."
    invoices = []
    for row in rows:
        totals = (row.get("details") or {}).get("totals") or {}
        currency = row.get("currency_code") or ""
        invoices.append(
            {
                "id": row.get("id", ""),
                "invoice_number": row.get("invoice_number") or "",
                "status": row.get("status", ""),
                "billed_at": row.get("billed_at") or row.get("created_at") or "",
                "total": money_format(totals.get("grand_total"), currency),
                "has_invoice": bool(row.get("invoice_number")),
            }
        )
    return invoices, ""


def checkout_intent_for_tenant(tenant: Tenant, intent_id: str) -> CheckoutIntent | None:
    try:
        pk = uuid.UUID(intent_id)
    except ValueError:
        return None
    return CheckoutIntent.objects.filter(pk=pk, tenant=tenant).first()


def checkout_status(tenant: Tenant, intent: CheckoutIntent) -> dict[str, Any]:
    """Has the webhook applied the subscription that this checkout created?"""
    sub = None
    if intent.paddle_subscription_id:
        sub = Subscription.objects.filter(
            paddle_subscription_id=intent.paddle_subscription_id, tenant=tenant
        ).first()
    tenant.refresh_from_db(fields=["plan"])
    applied = bool(
        sub
        and sub.status in {Subscription.Status.ACTIVE, Subscription.Status.TRIALING}
        and tenant.plan_id == intent.plan_price.plan_id
    )
    return {
        "applied": applied,
        "status": sub.status if sub else "waiting",
        "plan": tenant.plan.name,
    }
