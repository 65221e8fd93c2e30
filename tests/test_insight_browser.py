"""Insight pages in a real browser: charts drawn by our own script, filters, record page, CSV.

Drives Debian's Chromium (/usr/bin/chromium) through Playwright against a live WSGI server, in
a tenant of its own ("insight-browser", committed once) so other tests never see its rows.
Screenshots go to .local/screenshots/ (git-ignored).
"""

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.test.testcases import LiveServerThread, _StaticFilesHandler
from django.utils import timezone

from conftest import PASSWORD, in_tenant

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SLUG = "insight-browser"
SHOTS = Path(__file__).resolve().parent.parent / ".local" / "screenshots"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason="Debian's Chromium is not installed at /usr/bin/chromium (apt-get install chromium)",
    ),
]


@pytest.fixture(scope="session")
def insight_tenant(tenants_ab, django_db_blocker):
    """A committed tenant with a workspace and records over the last days."""
    from audit.models import UsageRecord
    from audit.tests.insight_factory import record, workspace, write
    from tenants.models import Tenant
    from tenants.services import tenant_create

    with django_db_blocker.unblock():
        tenant = Tenant.objects.filter(slug=SLUG).first() or tenant_create(
            name="Insight Browser",
            slug=SLUG,
            owner_email=f"owner@{SLUG}.example.com",
            owner_password=PASSWORD,
            owner_email_verified=True,
        )
        _, _, key = workspace(tenant)
        _, _, other = workspace(tenant, "Ops")
        with in_tenant(tenant):
            empty = not UsageRecord.objects.exists()
        if empty:
            now = timezone.now()
            write(
                tenant,
                [
                    record(
                        key if i % 3 else other,
                        at=now - timedelta(hours=5 * i + 1),
                        model="claude-haiku-4-5" if i % 4 == 0 else "claude-sonnet-4-5",
                        category="coding" if i % 2 else "summarization",
                        sensitivity="internal",
                        relevance_score=(i % 10) / 10,
                        prompt=f"Please review change number {i}",
                        usage={
                            "input_tokens": 400 + i,
                            "output_tokens": 90,
                            "cache_read_input_tokens": 2000 if i % 2 else 0,
                            "cache_creation_input_tokens": 500,
                            "cache_creation": {"ephemeral_5m_input_tokens": 500},
                        },
                    )
                    for i in range(60)
                ],
            )
    return tenant


@pytest.fixture
def server(insight_tenant, django_db_blocker) -> Iterator[int]:
    with django_db_blocker.unblock():
        thread = LiveServerThread("localhost", _StaticFilesHandler, port=0)
        thread.daemon = True
        thread.start()
        thread.is_ready.wait()
        if thread.error:
            raise thread.error
        try:
            yield thread.port
        finally:
            thread.terminate()


@pytest.fixture
def page(server):
    sync_api = pytest.importorskip("playwright.sync_api")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(
            accept_downloads=True, viewport={"width": 1400, "height": 1000}
        )
        tab = context.new_page()
        tab.problems = []  # type: ignore[attr-defined]
        tab.on(
            "console",
            lambda m: (
                m.type == "error"
                and "Failed to load resource" not in m.text
                and tab.problems.append(m.text)
            ),
        )
        tab.on(
            "response",
            lambda r: (
                r.status >= 400
                and not r.url.endswith("/favicon.ico")
                and tab.problems.append(f"{r.status} {r.url}")
            ),
        )
        tab.on("pageerror", lambda e: tab.problems.append(str(e)))
        try:
            yield tab
        finally:
            context.close()
            browser.close()


def test_the_browser_tenant_rollups_count_every_record(insight_tenant, db):
    """Also makes pytest-django set up the test database when this module runs alone."""
    from audit.models import UsageRecord, UsageRollup

    with in_tenant(insight_tenant):
        rolled = sum(UsageRollup.objects.values_list("requests", flat=True))
        assert rolled == UsageRecord.objects.count() >= 60


def test_dashboard_usage_log_record_and_csv_download_in_chromium(server, page):
    base = f"http://{SLUG}.localhost:{server}"
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=login]", f"owner@{SLUG}.example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("form [type=submit]")
    page.wait_for_load_state("load")

    page.goto(f"{base}/?grain=day")
    page.wait_for_selector("[data-chart][data-drawn] svg")
    drawn = page.locator("[data-chart][data-drawn] svg").count()
    assert drawn == page.locator("[data-chart]").count() >= 10
    assert page.locator("[data-source=chart-series] polyline").count() >= 1
    assert page.locator("[data-source=chart-by_model] rect.bar").count() == 2
    page.screenshot(path=str(SHOTS / "insight-dashboard.png"), full_page=True)

    page.goto(f"{base}/usage/")
    page.fill("#usage-filters input[name=model]", "claude-haiku-4-5")
    page.click("#usage-filters button[type=submit]")
    page.wait_for_load_state("load")
    assert "model=claude-haiku-4-5" in page.url
    models = page.locator("#usage-table tbody tr td:nth-child(2)").all_inner_texts()
    assert models
    assert set(models) == {"claude-haiku-4-5"}
    page.screenshot(path=str(SHOTS / "insight-usage-log.png"), full_page=True)

    with page.expect_download() as info:
        page.click("#export-csv")
    download = info.value
    target = SHOTS / "insight-usage.csv"
    download.save_as(str(target))
    lines = target.read_text().splitlines()
    assert lines[0].startswith("id,created_at,model,")
    assert len(lines) - 1 == len(models)

    page.locator("#usage-table tbody tr td a").first.click()
    page.wait_for_load_state("load")
    assert page.locator("#latency").is_visible()
    assert "Please review change number" in page.locator("#prompt").inner_text()
    page.screenshot(path=str(SHOTS / "insight-record.png"), full_page=True)

    assert page.problems == []  # type: ignore[attr-defined]
