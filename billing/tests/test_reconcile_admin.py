import json
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.test import Client

from accounts.models import User
from billing.models import BillingAccount, Subscription, WebhookEvent
from billing.services import billing_reconcile, subscription_sync
from billing.tests.conftest import event, post_event
from billing.tests.fake_paddle import T0, subscription_data

pytestmark = pytest.mark.django_db

SUB = "sub_01aaaaaaaaaaaaaaaaaaaaaaaa"


def linked(tenant, **extra) -> Subscription:
    BillingAccount.objects.create(
        tenant=tenant, paddle_customer_id="ctm_01aaaaaaaaaaaaaaaaaaaaaaaa"
    )
    subscription_sync(subscription_data(SUB, **extra), occurred_at=T0)
    return Subscription.objects.get(paddle_subscription_id=SUB)


def test_reconcile_repairs_drift_and_reports_it(tenant_a, prices, fake_paddle):
    linked(tenant_a, price_id="pri_team_monthly")
    fake_paddle.subscriptions[SUB] = subscription_data(SUB, price_id="pri_business_monthly")

    summary = billing_reconcile()

    assert summary["subscriptions_seen"] == 1
    assert summary["repaired"] == [{"subscription": SUB, "fields": ["price"]}]
    assert summary["plans_changed"] == []  # applied during the repair itself
    tenant_a.refresh_from_db()
    assert tenant_a.plan.slug == "business"
    assert Subscription.objects.get().synced_from_api_at is not None


def test_reconcile_with_no_drift_changes_nothing(tenant_a, prices, fake_paddle):
    linked(tenant_a, price_id="pri_team_monthly")
    fake_paddle.subscriptions[SUB] = subscription_data(SUB, price_id="pri_team_monthly")

    summary = billing_reconcile()

    assert summary["repaired"] == []
    assert Subscription.objects.get().synced_from_api_at is None


def test_reconcile_processes_events_the_worker_never_saw(
    tenant_a, prices, fake_paddle, public_client, webhook_secrets
):
    linked(tenant_a, price_id="pri_team_monthly")
    fake_paddle.subscriptions[SUB] = subscription_data(SUB, price_id="pri_team_monthly")
    payload = event(
        "subscription.updated",
        subscription_data(SUB, price_id="pri_startup_monthly"),
        occurred_at=T0 + timedelta(minutes=1),
    )
    post_event(public_client, payload)  # stored; no worker ran it
    fake_paddle.subscriptions[SUB] = subscription_data(
        SUB, price_id="pri_startup_monthly", updated_at=T0 + timedelta(minutes=1)
    )

    summary = billing_reconcile()

    assert summary["events_retried"] == 1
    assert WebhookEvent.objects.get().status in {"processed", "skipped_stale"}
    tenant_a.refresh_from_db()
    assert tenant_a.plan.slug == "startup"


def test_reconcile_reports_an_unreachable_api_and_still_retries_events(
    tenant_a, fake_paddle, public_client, webhook_secrets
):
    fake_paddle.down = True
    post_event(public_client, event("customer.updated", {"id": "ctm_x"}, occurred_at=T0))

    summary = billing_reconcile()

    assert "ConnectionError" in summary["api_error"]
    assert summary["events_retried"] == 1


def test_reconcile_command_prints_json(fake_paddle):
    out = StringIO()
    call_command("billing_reconcile", "--json", stdout=out)

    assert json.loads(out.getvalue())["subscriptions_seen"] == 0


def test_process_pending_command_runs_stored_events(public_client, webhook_secrets):
    post_event(public_client, event("payout.paid", {"id": "pay_1"}, occurred_at=T0))
    out = StringIO()

    call_command("billing_process_pending", "--json", stdout=out)

    assert json.loads(out.getvalue()) == {"processed": 1}
    assert WebhookEvent.objects.get().status == "ignored"


def operator_client() -> Client:
    operator = User.objects.create_superuser("ops@tokenscope.example.com", "a-long-password-42")
    client = Client(HTTP_HOST="localhost")
    client.force_login(operator)
    return client


def test_admin_lists_webhook_events_and_replays_them(
    tenant_a, prices, fake_paddle, public_client, webhook_secrets
):
    linked(tenant_a, price_id="pri_team_monthly")
    payload = event(
        "subscription.updated",
        subscription_data(SUB, price_id="pri_business_monthly"),
        occurred_at=T0 + timedelta(minutes=1),
    )
    post_event(public_client, payload)
    stored = WebhookEvent.objects.get()
    client = operator_client()

    listing = client.get("/admin/billing/webhookevent/")
    detail = client.get(f"/admin/billing/webhookevent/{stored.pk}/change/")
    replay = client.post(
        "/admin/billing/webhookevent/",
        {"action": "replay", "_selected_action": [stored.pk]},
        follow=True,
    )

    assert listing.status_code == detail.status_code == 200
    assert payload["event_id"] in listing.content.decode()
    assert "pri_business_monthly" in detail.content.decode()
    assert "Replayed: 1 processed" in replay.content.decode()
    stored.refresh_from_db()
    assert stored.attempts == 1
    tenant_a.refresh_from_db()
    assert tenant_a.plan.slug == "business"


def test_admin_lists_subscriptions_and_plan_prices(tenant_a, prices):
    linked(tenant_a, price_id="pri_team_monthly")
    client = operator_client()

    assert SUB in client.get("/admin/billing/subscription/").content.decode()
    assert "pri_team_monthly" in client.get("/admin/billing/planprice/").content.decode()


def test_deploy_check_refuses_the_sandbox_without_debug(settings):
    settings.DEBUG = False
    settings.PADDLE_ENVIRONMENT = "sandbox"

    ids = {message.id for message in run_checks(include_deployment_checks=True, tags=["billing"])}

    assert "tokenscope.E002" in ids


def test_deploy_check_accepts_live(settings):
    settings.DEBUG = False
    settings.PADDLE_ENVIRONMENT = "live"
    settings.PADDLE_WEBHOOK_SECRETS = ["pdl_ntfset_live"]

    assert run_checks(include_deployment_checks=True, tags=["billing"]) == []


def test_worker_task_processes_the_event_queue_of_its_entity(
    tenant_a, prices, fake_paddle, public_client, webhook_secrets
):
    from billing.tasks import webhook_event_process

    BillingAccount.objects.create(
        tenant=tenant_a, paddle_customer_id="ctm_01aaaaaaaaaaaaaaaaaaaaaaaa"
    )
    post_event(
        public_client,
        event(
            "subscription.created",
            subscription_data(SUB, price_id="pri_startup_monthly"),
            occurred_at=T0,
        ),
    )

    result = webhook_event_process.apply(args=[WebhookEvent.objects.get().pk])

    assert result.get() == 1
    tenant_a.refresh_from_db()
    assert tenant_a.plan.slug == "startup"


def test_nightly_task_returns_the_reconciliation_summary(fake_paddle):
    from billing.tasks import billing_reconcile as nightly

    assert nightly.apply().get()["subscriptions_seen"] == 0


def _stored_event(event_type, data, *, received_at, status=WebhookEvent.Status.PROCESSED):
    return WebhookEvent.objects.create(
        event_id=f"evt_{uuid.uuid4().hex[:26]}",
        event_type=event_type,
        occurred_at=received_at,
        entity_key=f"sub:{data['id']}" if event_type.startswith("sub") else f"ctm:{data['id']}",
        payload={"data": data},
        received_at=received_at,
        status=status,
    )


def test_webhook_payloads_are_emptied_after_90_days_once_settled():
    from django.utils import timezone

    from billing.services import webhook_payloads_scrub

    now = timezone.now()
    old = _stored_event(
        "customer.updated",
        {"id": "ctm_old", "email": "a@x.example"},
        received_at=now - timedelta(days=91),
    )
    recent = _stored_event(
        "customer.updated",
        {"id": "ctm_new", "email": "b@x.example"},
        received_at=now - timedelta(days=5),
    )
    stuck = _stored_event(
        "customer.updated",
        {"id": "ctm_stuck", "email": "c@x.example"},
        received_at=now - timedelta(days=91),
        status=WebhookEvent.Status.PENDING,
    )

    assert webhook_payloads_scrub(now=now) == 1

    old.refresh_from_db()
    recent.refresh_from_db()
    stuck.refresh_from_db()
    assert old.payload == {}
    assert old.event_type == "customer.updated"
    assert recent.payload["data"]["email"] == "b@x.example"
    assert stuck.payload["data"]["email"] == "c@x.example"  # not processed yet: kept


def test_purging_a_tenant_empties_the_payloads_of_its_paddle_events(tenant_a, tenant_b, prices):
    from django.utils import timezone

    from billing.services import webhook_payloads_scrub_for_tenant

    linked(tenant_a, price_id="pri_team_monthly")
    now = timezone.now()
    mine = _stored_event(
        "subscription.updated",
        {"id": SUB, "customer_id": "ctm_01aaaaaaaaaaaaaaaaaaaaaaaa"},
        received_at=now,
    )
    customer = _stored_event(
        "customer.updated",
        {"id": "ctm_01aaaaaaaaaaaaaaaaaaaaaaaa", "email": "ceo@a.example"},
        received_at=now,
    )
    other = _stored_event(
        "customer.updated", {"id": "ctm_someone_else", "email": "x@b.example"}, received_at=now
    )

    result = webhook_payloads_scrub_for_tenant(tenant_a)

    assert result == {"billing.WebhookEvent payloads scrubbed": 2}
    for stored in (mine, customer, other):
        stored.refresh_from_db()
    assert mine.payload == {}
    assert customer.payload == {}
    assert other.payload["data"]["email"] == "x@b.example"
