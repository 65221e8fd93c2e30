"""REST API v1: tokens, roles and scopes, tenant isolation, filters, cursor pages, summary."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.permissions import AllowAny

from accounts.models import Role
from audit.api import TenantAPIView
from audit.insight import api_token_create, api_token_revoke
from audit.models import ApiToken, AuditEvent
from audit.tests.insight_factory import record, workspace, write
from conftest import in_tenant, make_user, owner_of, tenant_client
from tenants.services import tenant_host

pytestmark = pytest.mark.django_db


def api(tenant, user=None, *, scope="read", token=None):
    """A client on the tenant host sending a bearer token acting as `user`."""
    if token is None:
        with in_tenant(tenant):
            _, token = api_token_create(None, user=user or owner_of(tenant), scope=scope)
    return Client(HTTP_HOST=tenant_host(tenant), HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.fixture
def usage(tenant_a):
    project, center, key = workspace(tenant_a)
    _, _, other = workspace(tenant_a, "B")
    now = timezone.now()
    records = [
        record(
            key,
            at=now - timedelta(hours=1),
            category="coding",
            relevance_score=0.8,
            sensitivity="confidential",
        ),
        record(key, at=now - timedelta(hours=2), model="claude-haiku-4-5", status_code=500),
        record(other, at=now - timedelta(days=3), prompt="Draft a haiku about budgets"),
    ]
    write(tenant_a, records)
    return {"records": records, "project": project, "center": center, "key": key, "other": other}


def ids(response):
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_api_token_add_prints_a_token_once_and_stores_only_its_hash(tenant_a, capsys):
    call_command(
        "api_token_add",
        "--tenant",
        tenant_a.slug,
        "--email",
        f"owner@{tenant_a.slug}.example.com",
        "--scope",
        "write",
        "--json",
    )
    token = json.loads(capsys.readouterr().out)["token"]
    assert token.startswith(f"tsa_{tenant_a.short_id}_")
    with in_tenant(tenant_a):
        row = ApiToken.objects.latest("created_at")
        assert token not in row.token_hash
        assert row.scope == "write"
        assert AuditEvent.objects.filter(action="api_token.created", object_id=str(row.pk)).exists()
    assert api(tenant_a, token=token).get("/api/v1/projects/").status_code == 200


def test_requests_without_a_valid_token_are_refused(tenant_a, tenant_b):
    assert Client(HTTP_HOST=tenant_host(tenant_a)).get("/api/v1/usage/").status_code == 401
    bad = Client(HTTP_HOST=tenant_host(tenant_a), HTTP_AUTHORIZATION="Bearer tsa_nope")
    assert bad.get("/api/v1/usage/").status_code == 401
    with in_tenant(tenant_b):
        _, token_b = api_token_create(None, user=owner_of(tenant_b))
    assert api(tenant_a, token=token_b).get("/api/v1/usage/").status_code == 401


def test_a_revoked_token_stops_working(tenant_a):
    with in_tenant(tenant_a):
        row, token = api_token_create(None, user=owner_of(tenant_a))
    client = api(tenant_a, token=token)
    assert client.get("/api/v1/usage/").status_code == 200
    with in_tenant(tenant_a):
        api_token_revoke(owner_of(tenant_a), token=row)
    assert client.get("/api/v1/usage/").status_code == 401


def test_only_admins_create_api_tokens(tenant_a):
    member = make_user(tenant_a, Role.MEMBER)
    with in_tenant(tenant_a), pytest.raises(Exception, match="Only owners and admins"):
        api_token_create(member, user=member)
    assert tenant_client(tenant_a, member).get("/settings/api-tokens/").status_code == 403
    admin = tenant_client(tenant_a, owner_of(tenant_a))
    response = admin.post("/settings/api-tokens/", {"name": "ci", "scope": "read"})
    assert response.status_code == 200
    assert response.context["new_token"].startswith("tsa_")
    assert response["Cache-Control"].startswith("max-age=0")


def test_usage_list_filters_like_the_usage_log(tenant_a, usage):
    client = api(tenant_a, make_user(tenant_a, Role.VIEWER))
    first, second, third = (str(r.pk) for r in usage["records"])
    assert set(ids(client.get("/api/v1/usage/"))) == {first, second, third}
    assert ids(client.get("/api/v1/usage/", {"model": "claude-haiku-4-5"})) == [second]
    assert ids(client.get("/api/v1/usage/", {"status": "error"})) == [second]
    assert ids(client.get("/api/v1/usage/", {"status": "500"})) == [second]
    assert ids(client.get("/api/v1/usage/", {"category": "coding"})) == [first]
    assert ids(client.get("/api/v1/usage/", {"sensitivity": "confidential"})) == [first]
    assert ids(client.get("/api/v1/usage/", {"relevance_min": "0.5"})) == [first]
    assert ids(client.get("/api/v1/usage/", {"relevance_max": "0.5"})) == []
    assert ids(client.get("/api/v1/usage/", {"project": usage["project"].pk})) == [first, second]
    assert ids(client.get("/api/v1/usage/", {"cost_center": usage["other"].cost_center_id})) == [
        third
    ]
    assert ids(client.get("/api/v1/usage/", {"proxy_key": str(usage["other"].pk)})) == [third]
    assert ids(client.get("/api/v1/usage/", {"q": "haiku about"})) == [third]
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert ids(client.get("/api/v1/usage/", {"since": since})) == [first, second]
    until = (timezone.now() - timedelta(days=1)).date().isoformat()
    assert ids(client.get("/api/v1/usage/", {"until": until})) == [third]
    assert client.get("/api/v1/usage/", {"status": "bogus"}).status_code == 400
    assert client.get("/api/v1/usage/", {"cursor": "@@@"}).status_code == 400


def test_usage_records_have_exactly_the_documented_fields(tenant_a, usage):
    row = api(tenant_a).get(f"/api/v1/usage/{usage['records'][0].pk}/").json()
    assert list(row) == [
        "id",
        "created_at",
        "model",
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_creation_5m_input_tokens",
        "cache_creation_1h_input_tokens",
        "cache_read_input_tokens",
        "web_search_requests",
        "service_tier",
        "cost_usd",
        "project",
        "cost_center",
        "proxy_key_id",
        "status_code",
        "stop_reason",
        "latency_ms",
        "overhead_ms",
        "ip_address",
        "user_agent",
        "prompt_text",
        "prompt_sha256",
        "category",
        "relevance_score",
        "sensitivity",
        "detectors",
        "flagged_for_review",
        "upstream_request_id",
    ]
    assert isinstance(row["cost_usd"], str)
    assert row["project"] == "Project Main"
    assert row["prompt_text"] == "Summarize the quarterly report"


def test_usage_list_pages_with_cursors(tenant_a):
    _, _, key = workspace(tenant_a)
    now = timezone.now()
    write(tenant_a, [record(key, at=now - timedelta(seconds=i)) for i in range(25)])
    client = api(tenant_a)
    seen, url = [], "/api/v1/usage/?limit=10"
    while url:
        response = client.get(url)
        seen += ids(response)
        url = response.json()["next"]
    assert len(seen) == len(set(seen)) == 25


def test_usage_of_another_tenant_is_not_found_by_id(tenant_b, usage):
    client = api(tenant_b)
    assert client.get(f"/api/v1/usage/{usage['records'][0].pk}/").status_code == 404
    assert ids(client.get("/api/v1/usage/")) == []
    assert client.get(f"/api/v1/projects/{usage['project'].pk}/").status_code == 404
    assert client.get(f"/api/v1/cost-centers/{usage['center'].pk}/").status_code == 404
    assert client.get(f"/api/v1/proxy-keys/{usage['key'].pk}/").status_code == 404


def test_usage_summary_groups_from_rollups(tenant_a, usage):
    client = api(tenant_a, make_user(tenant_a, Role.VIEWER))
    rows = client.get("/api/v1/usage/summary/", {"group_by": "model"}).json()["results"]
    by_model = {r["model"]: r for r in rows}
    assert by_model["claude-haiku-4-5"]["requests"] == 1
    assert by_model["claude-haiku-4-5"]["error_requests"] == 1
    assert by_model["claude-sonnet-4-5"]["requests"] == 2
    total = sum(r.cost_usd for r in usage["records"])
    assert sum(Decimal(r["cost_usd"]) for r in rows) == total
    days = client.get("/api/v1/usage/summary/", {"group_by": "day,project"}).json()["results"]
    assert {r["project_name"] for r in days} == {"Project Main", "Project B"}
    assert all("day" in r for r in days)
    for group in ("week", "month", "cost_center", "key", "category", "sensitivity"):
        response = client.get("/api/v1/usage/summary/", {"group_by": group})
        assert response.status_code == 200, (group, response.content)
        assert sum(r["requests"] for r in response.json()["results"]) == 3
    assert client.get("/api/v1/usage/summary/", {"group_by": "day,week"}).status_code == 400
    assert client.get("/api/v1/usage/summary/", {"group_by": "model,category"}).status_code == 400
    both = {"group_by": "category,sensitivity"}
    assert client.get("/api/v1/usage/summary/", both).status_code == 400
    coding = client.get("/api/v1/usage/summary/", {"group_by": "category", "category": "coding"})
    assert [r["category"] for r in coding.json()["results"]] == ["coding"]
    assert client.get("/api/v1/usage/summary/", {"group_by": "colour"}).status_code == 400
    filtered = client.get(
        "/api/v1/usage/summary/", {"project": usage["project"].pk, "model": "claude-haiku-4-5"}
    ).json()["results"]
    assert filtered[0]["requests"] == 1


def test_viewers_and_read_tokens_cannot_change_anything(tenant_a, usage):
    viewer = api(tenant_a, make_user(tenant_a, Role.VIEWER), scope="write")
    read_owner = api(tenant_a, scope="read")
    body = {
        "name": "New",
        "code": "NEW",
        "project": usage["project"].pk,
        "cost_center": usage["center"].pk,
        "kind": "usage",
        "format": "csv",
    }
    for client in (viewer, read_owner):
        for path in (
            "/api/v1/projects/",
            "/api/v1/cost-centers/",
            "/api/v1/proxy-keys/",
            "/api/v1/exports/",
            f"/api/v1/proxy-keys/{usage['key'].pk}/revoke/",
        ):
            response = client.post(path, body, content_type="application/json")
            assert response.status_code == 403, (path, response.content)
            assert response.json()["code"] == "permission_denied"


def test_members_create_proxy_keys_and_see_the_key_once(tenant_a, usage):
    member = make_user(tenant_a, Role.MEMBER)
    client = api(tenant_a, member, scope="write")
    response = client.post(
        "/api/v1/proxy-keys/",
        {"name": "ci", "project": usage["project"].pk, "cost_center": usage["center"].pk},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["key"].startswith("tsk_")
    assert created["owner"] == member.email
    again = client.get(f"/api/v1/proxy-keys/{created['id']}/").json()
    assert "key" not in again
    # Members may not create projects or cost centers.
    assert (
        client.post("/api/v1/projects/", {"name": "X"}, content_type="application/json").status_code
        == 403
    )
    revoked = client.post(f"/api/v1/proxy-keys/{created['id']}/revoke/")
    assert revoked.json()["status"] == "revoked"


def test_admins_create_projects_and_cost_centers_through_services(tenant_a):
    client = api(tenant_a, scope="write")
    center = client.post(
        "/api/v1/cost-centers/",
        {"code": "FIN-9", "name": "Finance"},
        content_type="application/json",
    )
    assert center.status_code == 201, center.content
    project = client.post(
        "/api/v1/projects/",
        {"name": "Ledger", "default_cost_center": center.json()["id"]},
        content_type="application/json",
    )
    assert project.status_code == 201
    duplicate = client.post(
        "/api/v1/projects/", {"name": "Ledger"}, content_type="application/json"
    )
    assert duplicate.status_code == 400
    assert "name" in duplicate.json()["errors"]
    with in_tenant(tenant_a):
        assert AuditEvent.objects.filter(action="project.created", object_repr="Ledger").exists()


def test_audit_events_are_for_admins_filterable_and_paged(tenant_a, usage):
    client = api(tenant_a)
    events = client.get("/api/v1/audit-events/", {"action": "proxy_key.", "limit": 1}).json()
    assert events["results"][0]["action"] == "proxy_key.created"
    assert events["next"]
    assert (
        api(tenant_a, make_user(tenant_a, Role.MEMBER)).get("/api/v1/audit-events/").status_code
        == 403
    )
    assert (
        api(tenant_a, make_user(tenant_a, Role.VIEWER)).get("/api/v1/audit-events/").status_code
        == 403
    )


def test_the_session_works_for_the_api_too(tenant_a):
    client = tenant_client(tenant_a, make_user(tenant_a, Role.VIEWER))
    assert client.get("/api/v1/usage/").status_code == 200
    assert client.get("/api/v1/schema/").status_code == 200
    assert "GET /api/v1/usage/" in client.get("/api/v1/docs/").content.decode()


def test_api_views_cannot_replace_the_permission_check():
    with pytest.raises(TypeError, match="may not override permission_classes"):
        type("Open", (TenantAPIView,), {"permission_classes": (AllowAny,)})


def test_every_api_route_uses_the_tenant_base_class():
    from audit import urls_api
    from audit.api import SchemaView

    for pattern in urls_api.router.urls:
        view = pattern.callback.cls
        assert issubclass(view, TenantAPIView), view
    assert SchemaView.permission_classes == TenantAPIView.permission_classes


def test_api_token_of_another_tenant_cannot_be_revoked_from_here(tenant_a, tenant_b):
    with in_tenant(tenant_a):
        row, token = api_token_create(None, user=owner_of(tenant_a))
    other_admin = tenant_client(tenant_b, owner_of(tenant_b))
    assert other_admin.post(f"/settings/api-tokens/{row.pk}/revoke/").status_code == 404
    assert api(tenant_a, token=token).get("/api/v1/usage/").status_code == 200


def test_admins_revoke_api_tokens_from_the_page(tenant_a):
    with in_tenant(tenant_a):
        row, token = api_token_create(None, user=owner_of(tenant_a))
    admin = tenant_client(tenant_a, owner_of(tenant_a))
    assert admin.post(f"/settings/api-tokens/{row.pk}/revoke/").status_code == 302
    assert api(tenant_a, token=token).get("/api/v1/usage/").status_code == 401
    member = tenant_client(tenant_a, make_user(tenant_a, Role.MEMBER))
    assert member.post(f"/settings/api-tokens/{row.pk}/revoke/").status_code == 403


def test_usage_records_carry_detectors_and_the_review_flag_and_filter_by_it(tenant_a, usage):
    from audit.models import UsageRecord

    flagged = usage["records"][1]
    with in_tenant(tenant_a):
        UsageRecord.objects.filter(pk=flagged.pk).update(
            flagged_for_review=True, detectors=["email_address"]
        )
    client = api(tenant_a)

    everything = client.get("/api/v1/usage/").json()["results"]
    only_flagged = client.get("/api/v1/usage/?flagged=true").json()["results"]
    page = tenant_client(tenant_a, owner_of(tenant_a)).get("/usage/?flagged=on")

    assert {row["flagged_for_review"] for row in everything} == {True, False}
    assert [row["id"] for row in only_flagged] == [str(flagged.pk)]
    assert only_flagged[0]["detectors"] == ["email_address"]
    assert page.status_code == 200
    assert str(flagged.pk) in page.content.decode()
    assert str(usage["records"][0].pk) not in page.content.decode()


def test_budgets_are_listed_with_spend_and_admins_create_and_delete_them(tenant_a, usage):
    from proxy.models import Budget

    admin = make_user(tenant_a, Role.ADMIN)
    writer = api(tenant_a, admin, scope="write")
    project = usage["project"]

    created = writer.post(
        "/api/v1/budgets/",
        {
            "name": "Support monthly",
            "scope": "project",
            "target": str(project.pk),
            "amount_usd": "250.00",
            "period": "month",
            "block": True,
        },
        content_type="application/json",
    )
    listed = api(tenant_a, make_user(tenant_a, Role.VIEWER)).get("/api/v1/budgets/")

    assert created.status_code == 201, created.content
    body = created.json()
    assert body["amount_usd"] == "250.00"
    assert body["scope"] == "project"
    assert body["target"] == str(project.pk)
    assert body["block"] is True
    assert body["spent_usd"] is not None
    assert [b["name"] for b in listed.json()] == ["Support monthly"]
    with in_tenant(tenant_a):
        assert AuditEvent.objects.filter(action="budget.created").exists()
    assert writer.delete(f"/api/v1/budgets/{body['id']}/").status_code == 204
    with in_tenant(tenant_a):
        assert not Budget.objects.exists()


def test_members_cannot_create_budgets_and_other_tenants_budgets_are_not_found(tenant_a, tenant_b):
    from proxy.budgets.services import budget_create

    with in_tenant(tenant_b):
        theirs = budget_create(
            None, tenant=tenant_b, name="B's", scope="tenant", amount_usd="10", period="day"
        )
    member = api(tenant_a, make_user(tenant_a, Role.MEMBER), scope="write")

    refused = member.post(
        "/api/v1/budgets/",
        {"name": "x", "scope": "tenant", "amount_usd": "1.00", "period": "day"},
        content_type="application/json",
    )

    assert refused.status_code == 403
    assert api(tenant_a).get(f"/api/v1/budgets/{theirs.pk}/").status_code == 404
    assert api(tenant_a, scope="write").delete(f"/api/v1/budgets/{theirs.pk}/").status_code == 404
