from datetime import timedelta

import pytest
from django.core import mail

from audit.models import AuditEvent
from billing.models import BillingAccount, PlanChange, Subscription
from billing.selectors import tenant_retention_days_for_purge
from billing.services import (
    RETENTION_NOTICE_DAYS,
    entitlements_refresh,
    subscription_cancel,
    subscription_sync,
    tenant_entitlement_apply,
)
from billing.tests.fake_paddle import T0, subscription_data
from conftest import in_tenant, owner_of
from tokenscope.lib.errors import DomainError

pytestmark = pytest.mark.django_db

SUB = "sub_01aaaaaaaaaaaaaaaaaaaaaaaa"


def link(tenant, *, price="pri_team_monthly", status="active", at=T0, **extra):
    """Put a subscription for `tenant` in place as a webhook would (customer → tenant)."""
    BillingAccount.objects.get_or_create(
        tenant=tenant, defaults={"paddle_customer_id": "ctm_01aaaaaaaaaaaaaaaaaaaaaaaa"}
    )
    data = subscription_data(SUB, price_id=price, status=status, **extra)
    subscription_sync(data, occurred_at=at)
    tenant.refresh_from_db()
    return Subscription.objects.get(paddle_subscription_id=SUB)


def test_entitlement_active_subscription_gives_the_plan_its_retention_and_limits(tenant_a, prices):
    link(tenant_a, price="pri_team_monthly")

    assert tenant_a.plan.slug == "team"
    assert tenant_a.retention_days == 365
    assert tenant_a.plan.member_limit == 50
    assert tenant_a.plan.proxy_key_limit == 200
    assert tenant_a.plan.monthly_request_limit == 5_000_000
    change = PlanChange.objects.get(tenant=tenant_a)
    assert (change.old_plan.slug, change.new_plan.slug) == ("free", "team")


def test_entitlement_change_is_recorded_in_the_tenant_audit_log(tenant_a, prices):
    link(tenant_a, price="pri_business_monthly")

    with in_tenant(tenant_a):
        entry = AuditEvent.objects.get(action="billing.plan_changed")
    assert entry.changes["plan"] == ["free", "business"]
    assert entry.actor is None


def test_entitlement_trialing_subscription_gives_the_plan(tenant_a, prices):
    link(tenant_a, price="pri_startup_monthly", status="trialing")

    assert tenant_a.plan.slug == "startup"
    assert tenant_a.retention_days == 90


def test_entitlement_upgrade_sends_no_retention_notice(
    tenant_a, prices, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        link(tenant_a, price="pri_startup_monthly")
        link(tenant_a, price="pri_team_monthly", at=T0 + timedelta(days=1))

    assert tenant_a.plan.slug == "team"
    assert not [m for m in mail.outbox if "retention" in m.subject.lower()]
    assert BillingAccount.objects.get(tenant=tenant_a).retention_floor_days is None


def test_entitlement_downgrade_emails_owners_and_delays_the_shorter_retention(
    tenant_a, prices, django_capture_on_commit_callbacks
):
    link(tenant_a, price="pri_business_monthly")
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        link(tenant_a, price="pri_startup_monthly", at=T0 + timedelta(days=2))

    assert tenant_a.plan.slug == "startup"
    assert tenant_a.retention_days == 90
    notices = [m for m in mail.outbox if "retention" in m.subject.lower()]
    assert len(notices) == 1
    assert notices[0].to == [owner_of(tenant_a).email]
    assert "730 days to 90 days" in notices[0].body
    account = BillingAccount.objects.get(tenant=tenant_a)
    assert account.retention_floor_days == 730
    notice_sent = account.retention_notice_sent_at
    assert account.retention_floor_until == notice_sent + timedelta(days=RETENTION_NOTICE_DAYS)
    # The purge keeps the old retention during the notice period, then applies the new one.
    assert tenant_retention_days_for_purge(tenant_a, now=notice_sent + timedelta(days=6)) == 730
    assert tenant_retention_days_for_purge(tenant_a, now=notice_sent + timedelta(days=8)) == 90


def test_entitlement_past_due_keeps_the_plan_during_grace_then_falls_to_free(
    tenant_a, prices, settings
):
    settings.PADDLE_PAST_DUE_GRACE_DAYS = 7
    sub = link(tenant_a, price="pri_team_monthly")
    link(tenant_a, price="pri_team_monthly", status="past_due", at=T0 + timedelta(days=30))
    sub.refresh_from_db()
    assert sub.past_due_since == T0 + timedelta(days=30)

    assert tenant_entitlement_apply(tenant_a, now=T0 + timedelta(days=36)) is None
    assert tenant_a.plan.slug == "team"
    change = tenant_entitlement_apply(tenant_a, now=T0 + timedelta(days=38))

    assert change is not None
    tenant_a.refresh_from_db()
    assert tenant_a.plan.slug == "free"
    assert "grace" in change.reason


def test_entitlement_recovered_payment_restores_the_plan(tenant_a, prices):
    link(tenant_a, price="pri_team_monthly", status="past_due")
    tenant_entitlement_apply(tenant_a, now=T0 + timedelta(days=30))
    tenant_a.refresh_from_db()
    assert tenant_a.plan.slug == "free"

    link(tenant_a, price="pri_team_monthly", status="active", at=T0 + timedelta(days=31))

    assert tenant_a.plan.slug == "team"


def test_entitlement_cancel_keeps_the_plan_until_the_paid_period_ends(tenant_a, prices):
    end = T0 + timedelta(days=30)
    scheduled = {"action": "cancel", "effective_at": end.isoformat(), "resume_at": None}
    link(tenant_a, price="pri_team_monthly", scheduled_change=scheduled, period_end=end)
    sub = Subscription.objects.get()
    sub.status = Subscription.Status.CANCELED
    sub.save()

    assert tenant_entitlement_apply(tenant_a, now=end - timedelta(hours=1)) is None
    assert entitlements_refresh(now=end + timedelta(minutes=1)) == [tenant_a.slug]
    tenant_a.refresh_from_db()
    assert tenant_a.plan.slug == "free"


def test_entitlement_paused_subscription_falls_to_free_after_the_period(tenant_a, prices):
    end = T0 + timedelta(days=30)
    link(tenant_a, price="pri_startup_monthly", status="paused", period_end=end)

    assert tenant_a.plan.slug == "free" or tenant_a.plan.slug == "startup"
    tenant_entitlement_apply(tenant_a, now=end + timedelta(seconds=1))
    tenant_a.refresh_from_db()
    assert tenant_a.plan.slug == "free"


def test_entitlement_leaves_manually_managed_plans_alone(tenant_a, prices):
    BillingAccount.objects.create(
        tenant=tenant_a,
        paddle_customer_id="ctm_01aaaaaaaaaaaaaaaaaaaaaaaa",
        plan_managed_manually=True,
    )
    link(tenant_a, price="pri_team_monthly")

    assert tenant_a.plan.slug == "free"
    assert not PlanChange.objects.exists()


def test_entitlement_unknown_price_leaves_the_plan_alone(tenant_a, prices):
    link(tenant_a, price="pri_not_configured")

    assert tenant_a.plan.slug == "free"


def test_subscription_cancel_immediately_cancels_through_the_api_and_drops_to_free(
    tenant_a, prices, fake_paddle
):
    link(tenant_a, price="pri_team_monthly")
    fake_paddle.subscriptions[SUB] = subscription_data(SUB, price_id="pri_team_monthly")

    cancelled = subscription_cancel(tenant_a, reason="account deletion")

    assert cancelled == [SUB]
    assert ("POST", f"/subscriptions/{SUB}/cancel") in fake_paddle.calls
    assert Subscription.objects.get().status == "canceled"
    tenant_a.refresh_from_db()
    assert tenant_a.plan.slug == "free"
    with in_tenant(tenant_a):
        assert AuditEvent.objects.filter(action="billing.subscription_cancelled").exists()


def test_subscription_cancel_at_period_end_schedules_the_cancellation(
    tenant_a, prices, fake_paddle
):
    link(tenant_a, price="pri_team_monthly")
    fake_paddle.subscriptions[SUB] = subscription_data(SUB, price_id="pri_team_monthly")

    subscription_cancel(tenant_a, reason="owner asked", immediately=False)

    sub = Subscription.objects.get()
    assert sub.status == "active"
    assert sub.scheduled_change_action == "cancel"
    tenant_a.refresh_from_db()
    assert tenant_a.plan.slug == "team"


def test_subscription_cancel_reports_paddle_failures(tenant_a, prices, fake_paddle):
    link(tenant_a, price="pri_team_monthly")
    fake_paddle.down = True

    with pytest.raises(DomainError, match="Could not cancel"):
        subscription_cancel(tenant_a, reason="account deletion")


def test_subscription_cancel_without_subscription_does_nothing(tenant_b, fake_paddle):
    assert subscription_cancel(tenant_b, reason="account deletion") == []
    assert fake_paddle.calls == []
