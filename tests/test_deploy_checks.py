"""Hygiene: `manage.py check --deploy` in a clean environment with production-like settings
reports nothing; unsafe settings are refused; production cookies and headers are strict."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent


def _env(**overrides: str) -> dict[str, str]:
    """A clean environment (nothing inherited but PATH), pointed at this run's test database."""
    db = connection.settings_dict
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(60),
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "TOKENSCOPE_BASE_DOMAIN": "aitokenscope.com",
        "TOKENSCOPE_KEK_PROVIDER": "azure",
        "AZURE_KEYVAULT_KEY_ID": (
            "https://ts-vault.vault.azure.net/keys/kek/0123456789abcdef0123456789abcdef"
        ),
        "PADDLE_ENVIRONMENT": "live",
        "PADDLE_API_KEY": "pdl_live_apikey_placeholder",
        "PADDLE_CLIENT_TOKEN": "live_placeholder",
        "PADDLE_WEBHOOK_SECRETS": "pdl_ntfset_placeholder",
        "EMAIL_HOST": "smtp.example.com",
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_deploy_is_clean_with_production_settings() -> None:
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_check_deploy_refuses_a_local_kek_and_the_paddle_sandbox() -> None:
    env = _env(TOKENSCOPE_KEK_PROVIDER="local", PADDLE_ENVIRONMENT="sandbox")
    result = _manage("check", "--deploy", env=env)
    assert result.returncode != 0
    assert "tokenscope.E001" in result.stderr
    assert "tokenscope.E002" in result.stderr


def test_check_deploy_refuses_azure_without_a_key_id() -> None:
    result = _manage("check", "--deploy", env=_env(AZURE_KEYVAULT_KEY_ID=""))
    assert result.returncode != 0
    assert "tokenscope.E003" in result.stderr


def test_without_debug_a_missing_secret_key_stops_start_up() -> None:
    env = _env()
    del env["DJANGO_SECRET_KEY"]
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_settings_make_cookies_and_transport_strict() -> None:
    code = (
        "import json; from django.conf import settings as s; print(json.dumps({"
        "'session': s.SESSION_COOKIE_NAME, 'csrf': s.CSRF_COOKIE_NAME,"
        "'session_secure': s.SESSION_COOKIE_SECURE, 'csrf_secure': s.CSRF_COOKIE_SECURE,"
        "'httponly': s.SESSION_COOKIE_HTTPONLY, 'hsts': s.SECURE_HSTS_SECONDS,"
        "'ssl_redirect': s.SECURE_SSL_REDIRECT, 'frame': s.X_FRAME_OPTIONS,"
        "'hashers': s.PASSWORD_HASHERS[0], 'debug': s.DEBUG}))"
    )
    result = _manage("shell", "-c", code, env=_env())
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["session"] == "__Host-sessionid"
    assert values["csrf"] == "__Host-csrftoken"
    assert values["session_secure"]
    assert values["csrf_secure"]
    assert values["httponly"]
    assert values["hsts"] >= 31536000
    assert values["ssl_redirect"] is True
    assert values["frame"] == "DENY"
    assert "PBKDF2" in values["hashers"] or "Argon2" in values["hashers"]
    assert values["debug"] is False


def test_pages_carry_the_security_headers(tenant_a) -> None:
    from conftest import owner_of, tenant_client

    response = tenant_client(tenant_a, owner_of(tenant_a)).get("/")
    assert response.status_code == 200
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "unsafe-eval" not in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
