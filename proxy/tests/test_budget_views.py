"""Budgets and Notifications pages, the budget_add command: roles, isolation, CSRF, CSP."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from accounts.models import Role
from audit.models import AuditEvent
from conftest import in_tenant, make_user, owner_of, tenant_client
from proxy.budget_models import Budget, Notification
from proxy.budgets.services import budget_create
from proxy.models import CostCenter
from proxy.services import cost_center_create
from tenants.services import tenant_host

pytestmark = pytest.mark.django_db

FORM = {
    "name": "Team month",
    "scope": "tenant",
    "amount_usd": "250.00",
    "period": "month",
    "thresholds": "50, 80, 100",
    "block": "on",
    "extra_recipients": "finance@example.com",
}


def _budget(tenant, **options):
    with in_tenant(tenant):
        return budget_create(
            None,
            tenant=tenant,
            **{"name": "Ops", "scope": "tenant", "amount_usd": "10", "period": "day", **options},
        )


def test_viewers_see_budgets_with_progress_but_no_forms(tenant_a):
    _budget(tenant_a)
    client = tenant_client(tenant_a, make_user(tenant_a, Role.VIEWER))

    response = client.get("/budgets/")

    assert response.status_code == 200
    content = response.content.decode()
    assert "Ops" in content
    assert "<progress" in content
    assert "Create a budget" not in content
    assert "<script" not in content
    assert 'style="' not in content


def test_viewers_cannot_create_budgets(tenant_a):
    client = tenant_client(tenant_a, make_user(tenant_a, Role.VIEWER))

    response = client.post("/budgets/new/", FORM)

    assert response.status_code == 403
    with in_tenant(tenant_a):
        assert not Budget.objects.filter(name="Team month").exists()


def test_members_cannot_delete_budgets(tenant_a):
    budget = _budget(tenant_a)
    client = tenant_client(tenant_a, make_user(tenant_a, Role.MEMBER))

    assert client.post(f"/budgets/{budget.pk}/delete/").status_code == 403


def test_an_admin_creates_edits_and_deletes_a_budget_with_audit_events(tenant_a):
    client = tenant_client(tenant_a, make_user(tenant_a, Role.ADMIN))

    created = client.post("/budgets/new/", FORM)
    with in_tenant(tenant_a):
        budget = Budget.objects.get(name="Team month")
    edited = client.post(
        f"/budgets/{budget.pk}/", {**FORM, "amount_usd": "300", "thresholds": "90, 100"}
    )
    with in_tenant(tenant_a):
        budget.refresh_from_db()
    deleted = client.post(f"/budgets/{budget.pk}/delete/")

    assert created.status_code == edited.status_code == deleted.status_code == 302
    assert str(budget.amount_usd) == "300.000000"
    assert budget.thresholds == [90, 100]
    assert budget.block
    assert budget.extra_recipient_list == ["finance@example.com"]
    with in_tenant(tenant_a):
        assert not Budget.objects.filter(pk=budget.pk).exists()
        actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"budget.created", "budget.updated", "budget.deleted"} <= actions


def test_a_cost_center_budget_needs_its_cost_center(tenant_a):
    client = tenant_client(tenant_a, make_user(tenant_a, Role.ADMIN))

    response = client.post("/budgets/new/", {**FORM, "scope": "cost_center"})

    assert response.status_code == 200
    assert "No such cost center" in response.content.decode()


def test_another_tenants_budget_is_not_found(tenant_a, tenant_b):
    budget = _budget(tenant_a)
    client = tenant_client(tenant_b, owner_of(tenant_b))

    assert client.get(f"/budgets/{budget.pk}/").status_code == 404
    assert client.post(f"/budgets/{budget.pk}/delete/").status_code == 404
    with in_tenant(tenant_a):
        assert Budget.objects.filter(pk=budget.pk).exists()


def test_budget_forms_require_a_csrf_token(tenant_a):
    client = Client(HTTP_HOST=tenant_host(tenant_a), enforce_csrf_checks=True)
    with in_tenant(tenant_a):
        client.force_login(owner_of(tenant_a))

    assert client.post("/budgets/new/", FORM).status_code == 403


def test_the_notifications_list_shows_alerts_to_viewers(tenant_a):
    with in_tenant(tenant_a):
        Notification.objects.create(
            kind="budget_threshold", title="Budget 'Ops' reached 80 %", message="USD 8 of 10"
        )
    client = tenant_client(tenant_a, make_user(tenant_a, Role.VIEWER))

    response = client.get("/notifications/")

    assert response.status_code == 200
    assert "Budget &#x27;Ops&#x27; reached 80 %" in response.content.decode()


def test_an_admin_sets_the_webhook_and_workspace_rate_limits(tenant_a, settings):
    settings.DEBUG = False
    client = tenant_client(tenant_a, owner_of(tenant_a))

    refused = client.post("/budgets/settings/", {"webhook_url": "http://hooks.example.com/x"})
    saved = client.post(
        "/budgets/settings/",
        {"webhook_url": "https://hooks.example.com/x", "rpm_limit": "60"},
    )

    assert refused.status_code == saved.status_code == 302
    from proxy.budget_models import SpendSettings

    with in_tenant(tenant_a):
        row = SpendSettings.objects.get()
    assert (row.webhook_url, row.rpm_limit) == ("https://hooks.example.com/x", 60)


def test_budget_add_prints_the_budget_as_json(tenant_a):
    with in_tenant(tenant_a):
        cost_center_create(None, tenant=tenant_a, code="FIN", name="Finance")
    out = StringIO()

    call_command(
        "budget_add",
        "--tenant",
        tenant_a.slug,
        "--scope",
        "cost_center:FIN",
        "--amount",
        "99.5",
        "--period",
        "week",
        "--block",
        "--json",
        stdout=out,
    )

    data = json.loads(out.getvalue())
    with in_tenant(tenant_a):
        center = CostCenter.objects.get(code="FIN")
    assert data["scope"] == "cost_center"
    assert data["target"] == str(center.pk)
    assert data["amount_usd"] == "99.500000"
    assert (data["period"], data["block"], data["thresholds"]) == ("week", True, [50, 80, 100])


def test_budget_add_refuses_an_unknown_scope_target(tenant_a):
    with pytest.raises(CommandError, match="No project"):
        call_command(
            "budget_add",
            "--tenant",
            tenant_a.slug,
            "--scope",
            "project:Nope",
            "--amount",
            "1",
            "--period",
            "day",
        )
