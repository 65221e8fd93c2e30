"""Essential cookies only and no third-party requests, checked in a real browser.

Drives Debian's Chromium (/usr/bin/chromium) through Playwright against a live WSGI server.
Tenant hosts are reached as tenant-a.localhost:PORT (Chromium resolves *.localhost to loopback).
Every request to a host that is not ours is recorded and aborted; only the Billing page may ask
for Paddle's hosts. Cookie names must be the ones docs/privacy.md lists.
"""

import os
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from django.contrib.sessions.models import Session
from django.test.testcases import LiveServerThread, _StaticFilesHandler
from django_tenants.utils import schema_context

from conftest import PASSWORD

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
# docs/privacy.md: production names are __Host-sessionid and __Host-csrftoken.
DOCUMENTED_COOKIES = {"sessionid", "csrftoken", "messages", "__Host-sessionid", "__Host-csrftoken"}
PADDLE_HOSTS = {"cdn.paddle.com", "buy.paddle.com", "sandbox-buy.paddle.com"}
PUBLIC_PAGES = ["/", "/privacy/", "/privacy/request/", "/signup/"]
TENANT_PAGES_SIGNED_OUT = ["/accounts/login/", "/privacy/"]
TENANT_PAGES_SIGNED_IN = [
    "/",
    "/get-started/",
    "/keys/",
    "/projects/",
    "/cost-centers/",
    "/anthropic-key/",
    "/team/",
    "/settings/",
    "/settings/privacy/",
    "/settings/retention/",
    "/settings/account/delete/",
    "/privacy/",
    "/accounts/2fa/",
    "/billing/",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason="Debian's Chromium is not installed at /usr/bin/chromium (apt-get install chromium)",
    ),
]


@pytest.fixture
def server(tenants_ab: dict, django_db_blocker) -> Iterator[int]:
    """A live WSGI server on a free port, reading the committed session tenants A and B."""
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
            # Signing in committed a session row in tenant A: leave the schema as we found it.
            with schema_context(tenants_ab["a"].schema_name):
                Session.objects.all().delete()


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


class Visit:
    """A browser context that records every request and aborts those to other hosts."""

    def __init__(self, browser, port: int) -> None:
        self.port = port
        self.ours = {f"localhost:{port}", f"tenant-a.localhost:{port}"}
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.foreign: list[tuple[str, str]] = []
        self.current = ""
        self.context.route("**/*", self._route)

    def _route(self, route) -> None:
        netloc = urlsplit(route.request.url).netloc
        if netloc in self.ours or route.request.url.startswith("data:"):
            route.continue_()
        else:
            self.foreign.append((self.current, netloc))
            route.abort()

    def go(self, host: str, path: str) -> None:
        self.current = path
        response = self.page.goto(f"http://{host}:{self.port}{path}", wait_until="load")
        assert response is not None
        assert response.status < 400, (path, response.status)
        assert self.page.evaluate("window.localStorage.length") == 0, path
        assert self.page.evaluate("window.sessionStorage.length") == 0, path

    def cookie_names(self) -> set[str]:
        return {cookie["name"] for cookie in self.context.cookies()}

    def unexpected_foreign(self) -> list[tuple[str, str]]:
        return [
            (path, host)
            for path, host in self.foreign
            if not (path.startswith("/billing/") and host in PADDLE_HOSTS)
        ]


def test_signed_out_pages_set_only_documented_cookies_and_call_no_third_party(server, browser):
    visit = Visit(browser, server)
    for path in PUBLIC_PAGES:
        visit.go("localhost", path)
    for path in TENANT_PAGES_SIGNED_OUT:
        visit.go("tenant-a.localhost", path)

    assert visit.cookie_names() <= DOCUMENTED_COOKIES
    assert visit.foreign == []
    visit.context.close()


def test_signed_in_pages_set_only_documented_cookies_and_call_no_third_party(server, browser):
    visit = Visit(browser, server)
    visit.go("tenant-a.localhost", "/accounts/login/")
    visit.page.fill("input[name=login]", "owner@tenant-a.example.com")
    visit.page.fill("input[name=password]", PASSWORD)
    visit.page.click("form [type=submit]")
    visit.page.wait_for_load_state("load")
    assert "sessionid" in visit.cookie_names() or "__Host-sessionid" in visit.cookie_names()

    for path in TENANT_PAGES_SIGNED_IN:
        visit.go("tenant-a.localhost", path)

    cookies = visit.context.cookies()
    assert {cookie["name"] for cookie in cookies} <= DOCUMENTED_COOKIES
    session = next(c for c in cookies if c["name"].endswith("sessionid"))
    assert session["httpOnly"] is True
    assert all(cookie["sameSite"] in ("Lax", "Strict") for cookie in cookies)
    assert visit.unexpected_foreign() == []
    visit.context.close()
