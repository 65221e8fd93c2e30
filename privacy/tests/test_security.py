import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from accounts.models import Role
from conftest import make_user, owner_of, tenant_client

ROOT = Path(__file__).resolve().parents[2]
PROD_ENV = {
    "DEBUG": "0",
    "DJANGO_SECRET_KEY": "x7Qm9Lr2Vt8Zp4Kd6Nw1Hy3Bc5Fg0Js-production-like-secret-for-tests",
    "TOKENSCOPE_BASE_DOMAIN": "aitokenscope.example",
    "TOKENSCOPE_KEK_PROVIDER": "azure",
    "AZURE_KEYVAULT_KEY_ID": "https://ts-test.vault.azure.net/keys/kek/0123456789abcdef0123456789abcdef",
    "PADDLE_ENVIRONMENT": "live",
}
# The cookies docs/privacy.md lists (test names; production adds the __Host- prefix).
DOCUMENTED_COOKIES = {"sessionid", "csrftoken", "messages"}
PUBLIC_PAGES = ["/", "/privacy/", "/privacy/request/", "/signup/", "/privacy/versions/2026-05-14/"]
TENANT_PAGES = [
    "/",
    "/team/",
    "/settings/",
    "/settings/privacy/",
    "/settings/retention/",
    "/settings/delete/",
    "/settings/account/delete/",
    "/privacy/",
    "/accounts/login/",
]


def _production(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "TOKENSCOPE_TESTING")}
    env.update(PROD_ENV)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_production_settings_send_hsts_and_secure_host_only_cookies():
    out = _production(
        "import json, django, os;"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'tokenscope.settings');"
        "django.setup();"
        "from django.conf import settings as s;"
        "print(json.dumps([s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS,"
        " s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY,"
        " s.SESSION_COOKIE_NAME, s.CSRF_COOKIE_NAME, s.SECURE_SSL_REDIRECT]))"
    )
    hsts, subdomains, session_secure, csrf_secure, httponly, session, csrf, redirect = json.loads(
        out
    )

    assert hsts >= 15724800
    assert subdomains is True
    assert session_secure is True
    assert csrf_secure is True
    assert httponly is True
    assert redirect is True
    assert session == "__Host-sessionid"
    assert csrf == "__Host-csrftoken"


def test_check_deploy_passes_its_security_checks_in_production():
    out = _production(
        "import os, sys, django;"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'tokenscope.settings');"
        "django.setup();"
        "from django.core.management import call_command;"
        "call_command('check', deploy=True, tags=['security'], fail_level='WARNING');"
        "print('ok')"
    )
    assert out.strip().endswith("ok")


def _cookie_names(response):
    return set(response.cookies.keys())


def _assert_page_is_clean(response, path):
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp, path
    assert "script-src 'self';" in csp, path
    assert b'<script src="http' not in response.content, path
    assert b"googletagmanager" not in response.content


@pytest.mark.django_db
def test_public_pages_have_the_strict_csp_and_only_documented_cookies(public_client):
    seen: set[str] = set()
    for path in PUBLIC_PAGES:
        response = public_client.get(path)
        assert response.status_code == 200, path
        _assert_page_is_clean(response, path)
        seen |= _cookie_names(response)

    assert seen <= DOCUMENTED_COOKIES


@pytest.mark.django_db
@pytest.mark.parametrize("signed_in", [False, True])
def test_tenant_pages_have_the_strict_csp_and_only_documented_cookies(tenant_a, signed_in):
    client = tenant_client(tenant_a, owner_of(tenant_a) if signed_in else None)
    seen: set[str] = set()
    for path in TENANT_PAGES:
        response = client.get(path)
        assert response.status_code in (200, 302), path
        _assert_page_is_clean(response, path)
        seen |= _cookie_names(response)
    assert seen <= DOCUMENTED_COOKIES


@pytest.mark.django_db
def test_my_data_download_is_a_zip_for_any_signed_in_user(tenant_a):
    member = make_user(tenant_a, Role.VIEWER)

    response = tenant_client(tenant_a, member).post("/settings/privacy/my-data/")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_my_data_download_needs_a_sign_in(tenant_a):
    response = tenant_client(tenant_a).post("/settings/privacy/my-data/")

    assert response.status_code == 302
