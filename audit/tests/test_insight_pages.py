"""Insight pages: dashboard, usage log, record page, chargeback, audit log; roles and isolation."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Role
from audit.models import AuditEvent, InsightSettings
from audit.tests.insight_factory import record, workspace, write
from conftest import in_tenant, make_user, owner_of, tenant_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def usage(tenant_a):
    project, center, key = workspace(tenant_a)
    _, _, other_key = workspace(tenant_a, "B")
    now = timezone.now()
    records = [
        record(
            key,
            at=now - timedelta(hours=2),
            prompt="Translate the invoice to French",
            category="translation",
            sensitivity="internal",
            relevance_score=0.9,
        ),
        record(
            key,
            at=now - timedelta(hours=3),
            model="claude-haiku-4-5",
            status_code=429,
            category="coding",
            relevance_score=0.2,
        ),
        record(
            other_key,
            at=now - timedelta(days=2),
            prompt="Write a poem",
            usage={
                "input_tokens": 10,
                "output_tokens": 5,
                "cache_read_input_tokens": 5000,
                "cache_creation_input_tokens": 800,
                "cache_creation": {"ephemeral_5m_input_tokens": 800},
            },
        ),
    ]
    write(tenant_a, records)
    return {
        "records": records,
        "key": key,
        "other_key": other_key,
        "project": project,
        "center": center,
    }


def _chart(response, name):
    html = response.content.decode()
    marker = f'<script id="chart-{name}" type="application/json">'
    start = html.index(marker) + len(marker)
    return json.loads(html[start : html.index("</script>", start)])


def test_dashboard_shows_spend_by_model_project_and_cache_economics_to_a_viewer(tenant_a, usage):
    client = tenant_client(tenant_a, make_user(tenant_a, Role.VIEWER))
    response = client.get("/")
    assert response.status_code == 200
    models = {row["label"] for row in _chart(response, "by_model")}
    assert {"claude-sonnet-4-5", "claude-haiku-4-5"} <= models
    assert {row["label"] for row in _chart(response, "by_project")} >= {"Project Main", "Project B"}
    assert len(_chart(response, "series")) >= 30
    data = response.context["data"]
    assert data["total"]["requests"] == 3
    assert data["cache"]["hit_rate"] > 0
    assert data["cache"]["saved_usd"] > 0
    assert data["cache"]["unread_usd"] == 0  # the read exceeds the write in the same hour
    assert {r["label"] for r in data["by_category"]} >= {"translation", "coding"}
    assert 'src="/static/js/charts.js"' in response.content.decode()


def test_dashboard_filters_and_grains_come_from_the_url(tenant_a, usage):
    client = tenant_client(tenant_a, owner_of(tenant_a))
    response = client.get("/", {"grain": "week", "project": usage["project"].pk})
    assert response.status_code == 200
    assert response.context["data"]["total"]["requests"] == 2
    assert client.get("/", {"grain": "month", "since": "2026-01-01"}).status_code == 200
    assert client.get("/", {"since": "nonsense"}).status_code == 400


def test_dashboard_of_another_tenant_shows_none_of_our_usage(tenant_b, usage):
    client = tenant_client(tenant_b, owner_of(tenant_b))
    response = client.get("/")
    assert response.status_code == 200
    assert response.context["data"]["total"]["requests"] == 0


def test_usage_log_filters_by_model_status_category_relevance_and_prompt_search(tenant_a, usage):
    client = tenant_client(tenant_a, make_user(tenant_a, Role.VIEWER))

    def rows(**params):
        response = client.get("/usage/", params)
        assert response.status_code == 200, response.content
        return {r.pk for r in response.context["rows"]}

    first, second, third = (r.pk for r in usage["records"])
    assert rows() == {first, second, third}
    assert rows(model="claude-haiku-4-5") == {second}
    assert rows(status="error") == {second}
    assert rows(status="200") == {first, third}
    assert rows(category="translation") == {first}
    assert rows(sensitivity="internal") == {first}
    assert rows(relevance_min="0.5") == {first}
    assert rows(relevance_max="0.5") == {second}
    assert rows(project=usage["project"].pk) == {first, second}
    assert rows(proxy_key=str(usage["other_key"].pk)) == {third}
    assert rows(q="invoice") == {first}
    since = (timezone.now() - timedelta(days=1)).date().isoformat()
    assert rows(since=since) == {first, second}


def test_usage_log_pages_with_a_cursor_without_repeating_rows(tenant_a):
    _, _, key = workspace(tenant_a)
    now = timezone.now()
    write(tenant_a, [record(key, at=now - timedelta(minutes=i)) for i in range(120)])
    client = tenant_client(tenant_a, owner_of(tenant_a))
    seen, url = [], "/usage/"
    while url:
        response = client.get(url)
        seen += [r.pk for r in response.context["rows"]]
        url = "/usage/?" + response.context["next_query"] if response.context["next_query"] else ""
    assert len(seen) == len(set(seen)) == 120


def test_record_page_shows_prompt_costs_and_latency_split(tenant_a, usage):
    client = tenant_client(tenant_a, make_user(tenant_a, Role.VIEWER))
    first = usage["records"][0]
    response = client.get(f"/usage/{first.pk}/")
    body = response.content.decode()
    assert response.status_code == 200
    assert "Translate the invoice to French" in body
    assert first.prompt_sha256 in body
    assert "input_usd" in body
    assert "Proxy overhead" in body
    assert "Upstream" in body


def test_record_page_shows_only_the_hash_in_privacy_mode(tenant_a):
    _, _, key = workspace(tenant_a)
    (rec,) = write(tenant_a, [record(key, prompt=None)])
    response = tenant_client(tenant_a, owner_of(tenant_a)).get(f"/usage/{rec.pk}/")
    assert rec.prompt_sha256 in response.content.decode()
    assert "No prompt text was stored" in response.content.decode()


def test_admins_can_hide_prompt_text_from_viewers(tenant_a, usage):
    admin = tenant_client(tenant_a, owner_of(tenant_a))
    assert (
        admin.post("/usage/prompt-visibility/", {"hide_prompts_from_viewers": "on"}).status_code
        == 302
    )
    viewer = tenant_client(tenant_a, make_user(tenant_a, Role.VIEWER))
    first = usage["records"][0]
    body = viewer.get(f"/usage/{first.pk}/").content.decode()
    assert "Translate the invoice" not in body
    assert "hidden from viewers" in body
    assert viewer.get("/usage/", {"q": "invoice"}).status_code == 403
    assert "Translate the invoice" in admin.get(f"/usage/{first.pk}/").content.decode()
    with in_tenant(tenant_a):
        assert InsightSettings.objects.get().hide_prompts_from_viewers
        assert AuditEvent.objects.filter(action="settings.prompt_visibility_changed").exists()


def test_viewers_cannot_change_prompt_visibility(tenant_a):
    viewer = tenant_client(tenant_a, make_user(tenant_a, Role.VIEWER))
    assert (
        viewer.post("/usage/prompt-visibility/", {"hide_prompts_from_viewers": "on"}).status_code
        == 403
    )


def test_record_of_another_tenant_is_not_found(tenant_b, usage):
    client = tenant_client(tenant_b, owner_of(tenant_b))
    assert client.get(f"/usage/{usage['records'][0].pk}/").status_code == 404


def test_chargeback_report_totals_by_project_and_model_as_html_and_csv(tenant_a, usage):
    client = tenant_client(tenant_a, make_user(tenant_a, Role.VIEWER))
    month = timezone.now().astimezone().strftime("%Y-%m")
    response = client.get("/reports/chargeback/", {"month": month})
    assert response.status_code == 200
    centers = response.context["centers"]
    main = next(c for c in centers if c["cost_center_id"] == usage["center"].pk)
    assert main["total"]["requests"] >= 2
    assert {r["label"] for r in main["by_model"]} >= {"claude-sonnet-4-5", "claude-haiku-4-5"}
    csv_response = client.get("/reports/chargeback/", {"month": month, "format": "csv"})
    assert csv_response["Content-Type"].startswith("text/csv")
    text = csv_response.content.decode()
    assert "Project Main" in text
    assert "claude-haiku-4-5" in text
    assert client.get("/reports/chargeback/", {"month": "13-x"}).status_code == 400


def test_audit_log_is_for_admins_and_filters_by_action(tenant_a, usage):
    admin = tenant_client(tenant_a, owner_of(tenant_a))
    response = admin.get("/audit-log/", {"action": "proxy_key."})
    assert response.status_code == 200
    assert response.context["rows"]
    assert {e.action for e in response.context["rows"]} == {"proxy_key.created"}
    for role in (Role.VIEWER, Role.MEMBER):
        assert (
            tenant_client(tenant_a, make_user(tenant_a, role)).get("/audit-log/").status_code == 403
        )


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/usage/",
        "/reports/chargeback/",
        "/audit-log/",
        "/exports/",
        "/settings/api-tokens/",
        "/api/v1/docs/",
    ],
)
def test_insight_pages_need_a_signed_in_user(tenant_a, path):
    response = tenant_client(tenant_a).get(path)
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_dashboard_shows_budget_status(tenant_a, usage):
    from proxy.budgets.services import budget_create

    with in_tenant(tenant_a):
        budget_create(
            owner_of(tenant_a),
            tenant=tenant_a,
            name="Main monthly",
            scope="project",
            target=usage["project"].pk,
            amount_usd="100",
            period="month",
        )
    response = tenant_client(tenant_a, make_user(tenant_a, Role.VIEWER)).get("/")
    assert response.status_code == 200
    assert [row.budget.name for row in response.context["budgets"]] == ["Main monthly"]
    assert "Main monthly" in response.content.decode()
