import json

import pytest

from accounts.models import Role
from audit.models import AuditEvent
from billing.models import BillingAccount, CheckoutIntent
from billing.services import subscription_sync, webhook_events_process_for_key
from billing.tests.conftest import event, post_event
from billing.tests.fake_paddle import T0, subscription_data, transaction_data
from conftest import in_tenant, make_user, owner_of, tenant_client

pytestmark = pytest.mark.django_db

CUSTOMER = "ctm_01aaaaaaaaaaaaaaaaaaaaaaaa"


def csp(response) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    return {part.split(" ", 1)[0]: part for part in header.split("; ")}


def with_customer(tenant) -> BillingAccount:
    return BillingAccount.objects.create(tenant=tenant, paddle_customer_id=CUSTOMER)


def test_billing_page_sends_anonymous_visitors_to_sign_in(tenant_a):
    response = tenant_client(tenant_a).get("/billing/")

    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("role", [Role.VIEWER, Role.MEMBER])
def test_billing_page_shows_plan_to_readers_without_change_controls(tenant_a, prices, role):
    with_customer(tenant_a)
    client = tenant_client(tenant_a, make_user(tenant_a, role))

    response = client.get("/billing/")

    assert response.status_code == 200
    body = response.content.decode()
    assert "Your plan: Free" in body
    assert "30 days" in body
    assert "data-plan-price" not in body
    assert "Manage billing" not in body
    assert "cdn.paddle.com/paddle/v2/paddle.js" not in body


def test_billing_page_offers_admins_the_checkout_with_paddle_js(tenant_a, prices, settings):
    settings.PADDLE_CLIENT_TOKEN = "test_0123456789abcdef"
    with_customer(tenant_a)
    client = tenant_client(tenant_a, make_user(tenant_a, Role.ADMIN))

    response = client.get("/billing/")

    body = response.content.decode()
    assert response.status_code == 200
    assert f'data-plan-price="{prices["team"].pk}"' in body
    assert "pri_team_live" not in body
    assert 'data-paddle-token="test_0123456789abcdef"' in body
    assert '<script src="https://cdn.paddle.com/paddle/v2/paddle.js"></script>' in body
    assert "/static/js/billing.js" in body
    assert "Manage billing" in body
    assert "<script>" not in body  # no inline script: the CSP has no 'unsafe-inline'
    assert "no-store" in response["Cache-Control"]


def test_billing_page_csp_allows_paddle_hosts(tenant_a, prices):
    client = tenant_client(tenant_a, owner_of(tenant_a))

    policy = csp(client.get("/billing/"))

    assert policy["script-src"] == "script-src 'self' https://cdn.paddle.com"
    assert "https://sandbox-buy.paddle.com" in policy["frame-src"]
    assert "'none'" not in policy["frame-src"]
    assert "https://*.paddle.com" in policy["connect-src"]
    assert "'unsafe-inline'" not in policy["script-src"]
    assert policy["frame-ancestors"] == "frame-ancestors 'none'"


def test_paddle_hosts_are_allowed_on_no_other_page(tenant_a, public_client, prices):
    owner = owner_of(tenant_a)
    client = tenant_client(tenant_a, owner)
    intent = CheckoutIntent.objects.create(
        tenant=tenant_a, plan_price=prices["team"], expires_at=T0
    )
    pages = [
        client.get("/"),
        client.get("/team/"),
        client.get("/settings/"),
        client.get(f"/billing/success/?intent={intent.pk}"),
        client.get(f"/billing/status/?intent={intent.pk}"),
        public_client.get("/"),
        public_client.get("/signup/"),
    ]
    for response in pages:
        assert response.status_code == 200, response
        header = response["Content-Security-Policy"]
        assert "paddle" not in header
        assert csp(response)["script-src"] == "script-src 'self'"


def test_checkout_intent_is_issued_to_admins_as_an_opaque_id(tenant_a, prices):
    client = tenant_client(tenant_a, make_user(tenant_a, Role.ADMIN))

    response = client.post("/billing/checkout-intents/", {"plan_price": prices["team"].pk})

    assert response.status_code == 200
    data = response.json()
    intent = CheckoutIntent.objects.get(pk=data["checkout_intent_id"])
    assert intent.tenant == tenant_a
    assert intent.used_at is None
    assert data["price_id"] == "pri_team_monthly"
    assert data["success_url"].endswith(f"/billing/success/?intent={intent.pk}")
    assert str(tenant_a.pk) not in json.dumps(data).replace(str(intent.pk), "")
    assert tenant_a.short_id not in json.dumps(data)
    with in_tenant(tenant_a):
        assert AuditEvent.objects.filter(
            action="billing.checkout_started", object_id=str(intent.pk)
        ).exists()


@pytest.mark.parametrize("role", [Role.VIEWER, Role.MEMBER])
def test_checkout_intent_is_refused_to_readers(tenant_a, prices, role):
    client = tenant_client(tenant_a, make_user(tenant_a, role))

    response = client.post("/billing/checkout-intents/", {"plan_price": prices["team"].pk})

    assert response.status_code == 403
    assert not CheckoutIntent.objects.exists()


def test_checkout_intent_refuses_a_price_of_the_other_paddle_environment(tenant_a, prices):
    from billing.models import PlanPrice

    live = PlanPrice.objects.get(paddle_price_id="pri_team_live")
    client = tenant_client(tenant_a, owner_of(tenant_a))

    response = client.post("/billing/checkout-intents/", {"plan_price": live.pk})

    assert response.status_code == 400
    assert not CheckoutIntent.objects.exists()


def test_manage_billing_opens_a_fresh_portal_session_each_click(tenant_a, fake_paddle):
    with_customer(tenant_a)
    client = tenant_client(tenant_a, owner_of(tenant_a))

    first = client.post("/billing/portal/")
    second = client.post("/billing/portal/")

    assert first.status_code == second.status_code == 302
    assert first["Location"] != second["Location"]
    assert first["Location"].startswith("https://customer-portal.paddle.com/")
    assert fake_paddle.portal_sessions == 2
    assert "no-store" in first["Cache-Control"]
    with in_tenant(tenant_a):
        assert AuditEvent.objects.filter(action="billing.portal_opened").count() == 2


def test_manage_billing_is_post_only_and_refused_to_members(tenant_a, fake_paddle):
    with_customer(tenant_a)
    member = tenant_client(tenant_a, make_user(tenant_a, Role.MEMBER))
    owner = tenant_client(tenant_a, owner_of(tenant_a))

    assert member.post("/billing/portal/").status_code == 403
    assert owner.get("/billing/portal/").status_code == 405
    assert fake_paddle.portal_sessions == 0


def test_billing_page_lists_invoices_from_paddle_transactions(tenant_a, fake_paddle):
    with_customer(tenant_a)
    fake_paddle.transactions.append(transaction_data(grand_total="12900"))
    client = tenant_client(tenant_a, owner_of(tenant_a))

    body = client.get("/billing/").content.decode()

    assert "325-10566" in body
    assert "129.00 USD" in body
    assert ("GET", "/transactions") in fake_paddle.calls


def test_billing_page_still_renders_when_paddle_is_down(tenant_a, fake_paddle):
    with_customer(tenant_a)
    fake_paddle.down = True
    client = tenant_client(tenant_a, owner_of(tenant_a))

    response = client.get("/billing/")

    assert response.status_code == 200
    assert "Invoices are unavailable right now" in response.content.decode()


def test_invoice_download_redirects_to_a_fresh_pdf_link(tenant_a, fake_paddle):
    with_customer(tenant_a)
    fake_paddle.transactions.append(transaction_data())
    client = tenant_client(tenant_a, owner_of(tenant_a))

    response = client.post("/billing/invoices/txn_01aaaaaaaaaaaaaaaaaaaaaaaa/")

    assert response.status_code == 302
    assert response["Location"] == "https://files.example.com/txn_01aaaaaaaaaaaaaaaaaaaaaaaa.pdf"


def test_invoice_of_another_customer_is_404(tenant_a, fake_paddle):
    with_customer(tenant_a)
    client = tenant_client(tenant_a, owner_of(tenant_a))

    assert client.post("/billing/invoices/txn_01someoneelse/").status_code == 404


def test_checkout_success_page_waits_then_reports_the_applied_plan(
    tenant_a, prices, fake_paddle, public_client, webhook_secrets
):
    intent = CheckoutIntent.objects.create(
        tenant=tenant_a, plan_price=prices["team"], expires_at=T0.replace(year=T0.year + 1)
    )
    client = tenant_client(tenant_a, make_user(tenant_a, Role.VIEWER))

    page = client.get(f"/billing/success/?intent={intent.pk}")
    before = client.get(f"/billing/status/?intent={intent.pk}").json()
    post_event(
        public_client,
        event("subscription.created", subscription_data(intent_id=str(intent.pk)), occurred_at=T0),
    )
    webhook_events_process_for_key("sub:sub_01aaaaaaaaaaaaaaaaaaaaaaaa")
    after = client.get(f"/billing/status/?intent={intent.pk}").json()

    assert page.status_code == 200
    assert 'data-status-url="/billing/status/?intent=' in page.content.decode()
    assert before == {"applied": False, "status": "waiting", "plan": "Free"}
    assert after == {"applied": True, "status": "active", "plan": "Team"}


def test_checkout_intent_of_another_tenant_is_404(tenant_a, tenant_b, prices):
    intent = CheckoutIntent.objects.create(
        tenant=tenant_a, plan_price=prices["team"], expires_at=T0
    )
    client_b = tenant_client(tenant_b, owner_of(tenant_b))

    assert client_b.get(f"/billing/success/?intent={intent.pk}").status_code == 404
    assert client_b.get(f"/billing/status/?intent={intent.pk}").status_code == 404
    assert client_b.get("/billing/status/?intent=not-a-uuid").status_code == 404


def test_billing_page_shows_only_the_own_tenant_subscription(tenant_a, tenant_b, prices):
    BillingAccount.objects.create(tenant=tenant_a, paddle_customer_id=CUSTOMER)
    subscription_sync(subscription_data(price_id="pri_team_monthly"), occurred_at=T0)
    client_b = tenant_client(tenant_b, owner_of(tenant_b))

    body = client_b.get("/billing/").content.decode()

    assert "Your plan: Free" in body
    assert "No paid subscription." in body
    assert "Manage billing" not in body


def paying(tenant, fake_paddle, price="pri_team_monthly"):
    with_customer(tenant)
    data = subscription_data(price_id=price)
    fake_paddle.subscriptions[data["id"]] = data
    subscription_sync(data, occurred_at=T0)
    tenant.refresh_from_db()


def test_paying_tenant_switches_plan_through_the_api_not_a_second_checkout(
    tenant_a, prices, fake_paddle
):
    paying(tenant_a, fake_paddle)
    client = tenant_client(tenant_a, owner_of(tenant_a))

    page = client.get("/billing/").content.decode()
    response = client.post("/billing/change-plan/", {"plan_price": prices["business"].pk})

    assert "Switch to Business" in page
    assert "data-plan-price" not in page
    assert "cdn.paddle.com/paddle/v2/paddle.js" not in page
    assert response.status_code == 302
    assert fake_paddle.updates == [
        {
            "items": [{"price_id": "pri_business_monthly", "quantity": 1}],
            "proration_billing_mode": "prorated_immediately",
        }
    ]
    tenant_a.refresh_from_db()
    assert tenant_a.plan.slug == "business"
    with in_tenant(tenant_a):
        assert AuditEvent.objects.filter(action="billing.plan_change_requested").exists()


def test_plan_switch_is_refused_to_members(tenant_a, prices, fake_paddle):
    paying(tenant_a, fake_paddle)
    client = tenant_client(tenant_a, make_user(tenant_a, Role.MEMBER))

    response = client.post("/billing/change-plan/", {"plan_price": prices["business"].pk})

    assert response.status_code == 403
    assert fake_paddle.updates == []


def test_plan_switch_failure_at_paddle_changes_nothing(tenant_a, prices, fake_paddle):
    paying(tenant_a, fake_paddle)
    fake_paddle.down = True
    client = tenant_client(tenant_a, owner_of(tenant_a))

    response = client.post(
        "/billing/change-plan/", {"plan_price": prices["business"].pk}, follow=True
    )

    assert "nothing was changed" in response.content.decode()
    tenant_a.refresh_from_db()
    assert tenant_a.plan.slug == "team"


def test_checkout_is_refused_while_a_subscription_is_live(tenant_a, prices, fake_paddle):
    paying(tenant_a, fake_paddle)
    client = tenant_client(tenant_a, owner_of(tenant_a))

    response = client.post("/billing/checkout-intents/", {"plan_price": prices["business"].pk})

    assert response.status_code == 400
    assert "already has a subscription" in response.json()["error"]
