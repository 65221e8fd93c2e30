import json
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection

from billing.models import CheckoutIntent, PlanChange, Subscription, WebhookEvent
from billing.services import webhook_event_enqueue, webhook_events_process_for_key
from billing.signature import signature_header
from billing.tests.conftest import WEBHOOK_URL, event, post_event
from billing.tests.fake_paddle import T0, subscription_data, transaction_data
from conftest import owner_of
from tenants.models import Tenant
from tenants.services import tenant_create
from tokenscope.celery import app as celery_app

pytestmark = pytest.mark.django_db


def make_intent(tenant, price) -> CheckoutIntent:
    return CheckoutIntent.objects.create(
        tenant=tenant,
        plan_price=price,
        created_by_email=owner_of(tenant).email,
        expires_at=T0 + timedelta(hours=2),
    )


def process_all() -> None:
    for key in set(WebhookEvent.objects.values_list("entity_key", flat=True)):
        webhook_events_process_for_key(key)


def test_webhook_with_valid_signature_is_stored_and_answered_200(public_client, webhook_secrets):
    payload = event("subscription.created", subscription_data(), occurred_at=T0)

    response = post_event(public_client, payload)

    assert response.status_code == 200
    stored = WebhookEvent.objects.get(event_id=payload["event_id"])
    assert stored.status == WebhookEvent.Status.PENDING
    assert stored.event_type == "subscription.created"
    assert stored.entity_key == "sub:sub_01aaaaaaaaaaaaaaaaaaaaaaaa"
    assert stored.payload == payload


def test_webhook_with_tampered_body_is_refused_and_not_stored(public_client, webhook_secrets):
    body = json.dumps(event("subscription.created", subscription_data(), occurred_at=T0)).encode()
    header = signature_header(body, webhook_secrets[0])

    response = public_client.post(
        WEBHOOK_URL,
        data=body.replace(b"active", b"paused"),
        content_type="application/json",
        HTTP_PADDLE_SIGNATURE=header,
    )

    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()


def test_webhook_without_signature_header_is_refused(public_client, webhook_secrets):
    payload = event("subscription.created", subscription_data(), occurred_at=T0)

    response = public_client.post(WEBHOOK_URL, data=payload, content_type="application/json")

    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()


def test_webhook_signed_with_the_old_secret_during_rotation_is_accepted(
    public_client, webhook_secrets
):
    payload = event("subscription.created", subscription_data(), occurred_at=T0)

    response = post_event(public_client, payload, secret=webhook_secrets[1])

    assert response.status_code == 200
    assert WebhookEvent.objects.filter(event_id=payload["event_id"]).exists()


def test_webhook_refuses_get(public_client, webhook_secrets):
    assert public_client.get(WEBHOOK_URL).status_code == 405


def test_webhook_with_signed_garbage_is_refused(public_client, webhook_secrets):
    body = b"not json"
    response = public_client.post(
        WEBHOOK_URL,
        data=body,
        content_type="application/json",
        HTTP_PADDLE_SIGNATURE=signature_header(body, webhook_secrets[0]),
    )
    assert response.status_code == 400


def test_webhook_same_event_twice_has_one_effect(
    public_client,
    webhook_secrets,
    tenant_a,
    prices,
    fake_paddle,
    django_capture_on_commit_callbacks,
):
    intent = make_intent(tenant_a, prices["team"])
    payload = event(
        "subscription.created", subscription_data(intent_id=str(intent.pk)), occurred_at=T0
    )

    first = post_event(public_client, payload)
    second = post_event(public_client, payload)
    with django_capture_on_commit_callbacks(execute=True):
        process_all()
        process_all()

    assert first.status_code == second.status_code == 200
    assert WebhookEvent.objects.filter(event_id=payload["event_id"]).count() == 1
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PROCESSED
    assert PlanChange.objects.filter(tenant=tenant_a).count() == 1
    tenant_a.refresh_from_db()
    assert tenant_a.plan.slug == "team"


def test_webhook_duplicate_transaction_event_sends_one_email(
    public_client,
    webhook_secrets,
    tenant_a,
    prices,
    fake_paddle,
    django_capture_on_commit_callbacks,
):
    intent = make_intent(tenant_a, prices["team"])
    fake_paddle.subscriptions["sub_01aaaaaaaaaaaaaaaaaaaaaaaa"] = subscription_data(
        intent_id=str(intent.pk)
    )
    completed = event("transaction.completed", transaction_data(), occurred_at=T0)
    paid = event("transaction.paid", transaction_data(status="paid"), occurred_at=T0)

    with django_capture_on_commit_callbacks(execute=True):
        for payload in (paid, completed, completed):
            assert post_event(public_client, payload).status_code == 200
        process_all()

    received = [m for m in mail.outbox if "Payment received" in m.subject]
    assert len(received) == 1
    assert received[0].to == [owner_of(tenant_a).email]
    assert "325-10566" in received[0].body
    assert "49.00 USD" in received[0].body


def test_webhook_older_subscription_update_after_a_newer_one_is_ignored(
    public_client,
    webhook_secrets,
    tenant_a,
    prices,
    fake_paddle,
    django_capture_on_commit_callbacks,
):
    intent = make_intent(tenant_a, prices["team"])
    created = event(
        "subscription.created", subscription_data(intent_id=str(intent.pk)), occurred_at=T0
    )
    newer = event(
        "subscription.updated",
        subscription_data(price_id="pri_business_monthly", intent_id=str(intent.pk)),
        occurred_at=T0 + timedelta(minutes=10),
    )
    older = event(
        "subscription.updated",
        subscription_data(price_id="pri_startup_monthly", intent_id=str(intent.pk)),
        occurred_at=T0 + timedelta(minutes=5),
    )
    with django_capture_on_commit_callbacks(execute=True):
        for payload in (created, newer):
            post_event(public_client, payload)
        process_all()
        assert post_event(public_client, older).status_code == 200
        process_all()

    assert WebhookEvent.objects.get(event_id=older["event_id"]).status == "skipped_stale"
    sub = Subscription.objects.get()
    assert sub.paddle_price_id == "pri_business_monthly"
    assert sub.last_event_occurred_at == T0 + timedelta(minutes=10)
    tenant_a.refresh_from_db()
    assert tenant_a.plan.slug == "business"


def test_webhook_events_of_one_subscription_run_in_occurred_at_order(
    public_client,
    webhook_secrets,
    tenant_a,
    prices,
    fake_paddle,
    django_capture_on_commit_callbacks,
):
    intent = make_intent(tenant_a, prices["team"])
    data = subscription_data(intent_id=str(intent.pk))
    later = event(
        "subscription.past_due",
        {**data, "status": "past_due"},
        occurred_at=T0 + timedelta(days=30),
    )
    created = event("subscription.created", data, occurred_at=T0)
    with django_capture_on_commit_callbacks(execute=True):
        post_event(public_client, later)  # arrives first
        post_event(public_client, created)
        process_all()

    statuses = dict(WebhookEvent.objects.values_list("event_type", "status"))
    assert statuses == {"subscription.created": "processed", "subscription.past_due": "processed"}
    assert Subscription.objects.get().status == "past_due"


def test_webhook_unknown_event_type_is_answered_200_and_has_no_effect(
    public_client, webhook_secrets, tenant_a
):
    payload = event("payout.paid", {"id": "pay_01"}, occurred_at=T0)
    plan_before = tenant_a.plan_id

    response = post_event(public_client, payload)
    process_all()

    assert response.status_code == 200
    stored = WebhookEvent.objects.get(event_id=payload["event_id"])
    assert stored.status == WebhookEvent.Status.IGNORED
    assert not Subscription.objects.exists()
    tenant_a.refresh_from_db()
    assert tenant_a.plan_id == plan_before
    assert mail.outbox == []


def test_webhook_for_a_deleted_tenant_is_answered_200_and_has_no_effect(
    public_client, webhook_secrets, prices, fake_paddle, django_capture_on_commit_callbacks
):
    gone = tenant_create(
        name="Gone",
        slug="tenant-gone",
        owner_email="owner@tenant-gone.example.com",
        owner_password="a-long-test-password-42",
    )
    intent = make_intent(gone, prices["team"])
    data = subscription_data(intent_id=str(intent.pk))
    with django_capture_on_commit_callbacks(execute=True):
        post_event(public_client, event("subscription.created", data, occurred_at=T0))
        process_all()
    assert Subscription.objects.get().tenant == gone
    with connection.cursor() as cursor:  # the test's transaction still holds deferred checks
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    gone.delete(force_drop=True)
    changes_before = PlanChange.objects.count()
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        response = post_event(
            public_client,
            event(
                "subscription.canceled",
                {**data, "status": "canceled"},
                occurred_at=T0 + timedelta(days=1),
            ),
        )
        paid = post_event(
            public_client, event("transaction.completed", transaction_data(), occurred_at=T0)
        )
        process_all()

    assert response.status_code == paid.status_code == 200
    assert not Tenant.objects.filter(slug="tenant-gone").exists()
    assert Subscription.objects.get().tenant is None
    assert PlanChange.objects.count() == changes_before
    assert mail.outbox == []
    assert set(WebhookEvent.objects.values_list("status", flat=True)) <= {"processed", "ignored"}


def test_webhook_answers_with_the_broker_unreachable_and_keeps_the_event_pending(
    public_client, webhook_secrets, django_capture_on_commit_callbacks, monkeypatch, caplog
):
    # Nothing listens on port 1: publishing to the broker fails; the endpoint must not care.
    monkeypatch.setattr(celery_app.conf, "broker_url", "redis://127.0.0.1:1/0")
    payload = event("subscription.created", subscription_data(), occurred_at=T0)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post_event(public_client, payload)

    assert response.status_code == 200
    assert len(callbacks) == 1
    assert "enqueue failed" in caplog.text
    assert WebhookEvent.objects.get(event_id=payload["event_id"]).status == "pending"


def test_webhook_enqueue_reaches_a_running_broker(public_client, webhook_secrets):
    post_event(public_client, event("subscription.created", subscription_data(), occurred_at=T0))

    assert webhook_event_enqueue(WebhookEvent.objects.get().pk) is True


def test_webhook_activated_before_created_refetches_the_subscription(
    public_client,
    webhook_secrets,
    tenant_a,
    prices,
    fake_paddle,
    django_capture_on_commit_callbacks,
):
    intent = make_intent(tenant_a, prices["startup"])
    truth = subscription_data(
        price_id="pri_startup_monthly",
        intent_id=str(intent.pk),
        updated_at=T0 + timedelta(minutes=3),
    )
    fake_paddle.subscriptions[truth["id"]] = truth
    activated = event(
        "subscription.activated",
        subscription_data(price_id="pri_team_monthly", intent_id=str(intent.pk)),
        occurred_at=T0 + timedelta(minutes=1),
    )
    with django_capture_on_commit_callbacks(execute=True):
        post_event(public_client, activated)
        process_all()

    assert ("GET", f"/subscriptions/{truth['id']}") in fake_paddle.calls
    sub = Subscription.objects.get()
    assert sub.paddle_price_id == "pri_startup_monthly"
    assert sub.synced_from_api_at is not None
    assert sub.last_event_occurred_at == T0 + timedelta(minutes=3)
    tenant_a.refresh_from_db()
    assert tenant_a.plan.slug == "startup"


def test_webhook_checkout_intent_links_one_subscription_only(
    public_client,
    webhook_secrets,
    tenant_a,
    prices,
    fake_paddle,
    django_capture_on_commit_callbacks,
):
    intent = make_intent(tenant_a, prices["team"])
    first = subscription_data("sub_01first00000000000000000", intent_id=str(intent.pk))
    second = subscription_data(
        "sub_01second0000000000000000", customer_id="ctm_01other", intent_id=str(intent.pk)
    )
    with django_capture_on_commit_callbacks(execute=True):
        post_event(public_client, event("subscription.created", first, occurred_at=T0))
        process_all()
        post_event(public_client, event("subscription.created", second, occurred_at=T0))
        process_all()

    assert Subscription.objects.get(paddle_subscription_id=first["id"]).tenant == tenant_a
    assert Subscription.objects.get(paddle_subscription_id=second["id"]).tenant is None
    intent.refresh_from_db()
    assert intent.used_at is not None
    assert intent.paddle_subscription_id == first["id"]


def test_webhook_expired_checkout_intent_links_nothing(
    public_client, webhook_secrets, tenant_a, prices, fake_paddle
):
    intent = make_intent(tenant_a, prices["team"])
    data = subscription_data(intent_id=str(intent.pk))
    post_event(
        public_client, event("subscription.created", data, occurred_at=T0 + timedelta(hours=3))
    )
    process_all()

    assert Subscription.objects.get().tenant is None
    tenant_a.refresh_from_db()
    assert tenant_a.plan.slug == "free"


def test_webhook_first_checkout_transaction_without_subscription_finds_the_tenant(
    public_client, webhook_secrets, tenant_a, prices, django_capture_on_commit_callbacks
):
    intent = make_intent(tenant_a, prices["team"])
    data = transaction_data(subscription_id=None, intent_id=str(intent.pk))
    with django_capture_on_commit_callbacks(execute=True):
        post_event(public_client, event("transaction.completed", data, occurred_at=T0))
        process_all()

    assert WebhookEvent.objects.get().status == "processed"
    assert [m.to for m in mail.outbox] == [[owner_of(tenant_a).email]]


def test_webhook_payment_failed_emails_the_billing_contact(
    public_client,
    webhook_secrets,
    tenant_a,
    prices,
    fake_paddle,
    django_capture_on_commit_callbacks,
):
    intent = make_intent(tenant_a, prices["team"])
    with django_capture_on_commit_callbacks(execute=True):
        post_event(
            public_client,
            event(
                "subscription.created", subscription_data(intent_id=str(intent.pk)), occurred_at=T0
            ),
        )
        post_event(
            public_client,
            event(
                "customer.updated",
                {"id": "ctm_01aaaaaaaaaaaaaaaaaaaaaaaa", "email": "ap@a.example.com", "name": "AP"},
                occurred_at=T0 + timedelta(minutes=1),
            ),
        )
        post_event(
            public_client,
            event(
                "transaction.payment_failed",
                transaction_data(status="past_due", invoice_number=None),
                occurred_at=T0 + timedelta(days=30),
            ),
        )
        process_all()

    failed = [m for m in mail.outbox if "Payment failed" in m.subject]
    assert len(failed) == 1
    assert failed[0].to == ["ap@a.example.com"]
    assert "Manage billing" in failed[0].body
