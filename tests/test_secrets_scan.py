"""Secrets scan: every flow runs with marker values, then nothing outside its one allowed place
holds any of them (also base64 at every alignment, hex and URL-encoded).

Markers: an Anthropic key (set and replaced on the page), proxy keys (made on the page; used
through the live gateway, streaming and not, errors included), an API token (made on the page,
used on the API), a Paddle webhook secret (signed webhooks, good and bad), passwords (sign-up,
sign-in good and bad, password change) and prompt text sent through a Privacy Mode workspace.

Scanned: every log record at DEBUG of every logger (message, args, traceback), every email, every
HTML/API/export response and cookie, every key of the Celery broker's Redis database, and every
text/varchar/json/bytea column of every schema — except the encrypted columns of
proxy_anthropiccredential (ciphertext, wrapped_dek, nonce).
Allowed (and asserted, so the scan is known to see them): the page that shows a new proxy key or
API token once shows it, the non-Privacy-Mode workspace keeps its prompt text.
"""

import base64
import contextlib
import json
import logging
import re
import secrets
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import redis
from django.conf import settings
from django.core import mail
from django.db import connection
from django.test import Client

from accounts.models import Role
from billing.signature import signature_header
from conftest import in_tenant, make_user, owner_of, tenant_client
from proxy.models import CostCenter, Project
from proxy.services import cost_center_create, project_create
from proxy.tests.gateway_support import wait_record
from tenants.models import Tenant
from tenants.services import tenant_host

pytestmark = pytest.mark.django_db

RUN = secrets.token_hex(4)
ANTHROPIC_KEY = f"sk-ant-api03-MarkerAnthropicKey{RUN}-0123456789abcdefghijklmnopqrstuvw-QQQQ"
ANTHROPIC_KEY_2 = f"sk-ant-api03-MarkerAnthropicKeyTwo{RUN}-0123456789abcdefghijklmnopqrst-RRRR"
PASSWORD_MARKER = f"Marker-Passw0rd-{RUN}-horse-battery"
PASSWORD_MARKER_2 = f"Marker-Second-{RUN}-staple-correct"
WRONG_PASSWORD = f"Marker-Wrong-{RUN}-guess-guess"
PADDLE_SECRET = f"pdl_ntfset_01marker{RUN}_secret"
PROMPT_MARKER = f"Confidential merger plan codename Bluefin{RUN} for the board"
BOGUS_PROXY_KEY = f"tsk_nobody_MarkerBogusProxyKey{RUN}xxxxxxxxxxxxxxxxxx"
BOGUS_API_TOKEN = f"tsa_nobody_MarkerBogusApiToken{RUN}xxxxxxxxxxxxxxxxxx"
EXCLUDED_COLUMNS = {
    ("proxy_anthropiccredential", c) for c in ("ciphertext", "wrapped_dek", "nonce")
}


def encodings(secret: str) -> list[str]:
    """The secret and its simple encodings; base64 at each of the three alignments."""
    raw = secret.encode()
    out = {secret, raw.hex(), quote(secret, safe="")}
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode()
        # Drop the characters that mix in the padding bytes or the tail: the rest is stable.
        out.add(encoded[4 if shift else 0 : -4])
        encoded_url = base64.urlsafe_b64encode(b"\0" * shift + raw).decode()
        out.add(encoded_url[4 if shift else 0 : -4])
    return sorted(out, key=len)


def _texts(value: Any) -> Iterator[str]:
    if value is None:
        return
    if isinstance(value, memoryview | bytes | bytearray):
        yield bytes(value).decode("utf-8", "replace")
        yield bytes(value).decode("latin-1")
    elif isinstance(value, dict | list):
        yield json.dumps(value, ensure_ascii=False)
    else:
        yield str(value)


def dump_all_schemas() -> Iterator[tuple[str, str]]:
    """(where, text) for every text-like, json and bytea value of every schema."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.table_schema, c.table_name, c.column_name FROM information_schema.columns c "
            "JOIN information_schema.tables t ON t.table_schema = c.table_schema "
            "AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE' "
            "WHERE c.table_schema NOT IN ('pg_catalog', 'information_schema') AND c.data_type IN "
            "('text', 'character varying', 'character', 'bytea', 'json', 'jsonb', 'ARRAY')"
        )
        columns = cursor.fetchall()
        for schema, table, column in columns:
            if (table, column) in EXCLUDED_COLUMNS:
                continue
            cursor.execute(f'SELECT "{column}" FROM "{schema}"."{table}"')  # noqa: S608
            for (value,) in cursor.fetchall():
                for text in _texts(value):
                    yield f"{schema}.{table}.{column}", text


def redis_dump() -> Iterator[tuple[str, str]]:
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        values: Iterable[bytes]
        if kind == "string":
            values = [client.get(key) or b""]
        elif kind == "list":
            values = client.lrange(key, 0, -1)
        elif kind == "hash":
            values = [k + b"=" + v for k, v in client.hgetall(key).items()]
        elif kind == "set":
            values = list(client.smembers(key))
        elif kind == "zset":
            values = [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
        else:
            continue
        for value in values:
            text = value.decode("utf-8", "replace")
            yield f"redis {key.decode(errors='replace')}", text
            # Celery wraps task bodies in base64 inside its JSON envelope: decode those too.
            try:
                envelope = json.loads(text)
            except ValueError:
                continue
            body = envelope.get("body") if isinstance(envelope, dict) else None
            if isinstance(body, str):
                with contextlib.suppress(ValueError):
                    yield f"redis {key.decode()} body", base64.b64decode(body).decode("utf-8")


class Scan:
    def __init__(self) -> None:
        self.outputs: list[tuple[str, str]] = []
        self.messages_sent = 0

    def add(self, where: str, response: Any) -> Any:
        if getattr(response, "streaming", False):
            content = b"".join(response.streaming_content)
        else:
            content = response.content
        self.outputs.append((where, content.decode("utf-8", "replace")))
        for name, value in getattr(response, "headers", {}).items():
            self.outputs.append((f"{where} header {name}", str(value)))
        for cookie in getattr(response, "cookies", {}).values():
            self.outputs.append((f"{where} cookie", str(cookie)))
        return response


def _webhook(client: Client, secret: str) -> Any:
    payload = {
        "event_id": f"evt_{RUN}{secrets.token_hex(8)}",
        "event_type": "subscription.created",
        "occurred_at": "2026-11-27T10:00:00.000000Z",
        "notification_id": f"ntf_{RUN}",
        "data": {"id": f"sub_{RUN}", "status": "active", "custom_data": {}},
    }
    body = json.dumps(payload).encode()
    return client.post(
        "/billing/paddle/webhook/",
        data=body,
        content_type="application/json",
        HTTP_PADDLE_SIGNATURE=signature_header(body, secret),
    )


def _proxy_calls(gateway: Any, scan: Scan) -> list[tuple[Tenant, str]]:
    """Calls through the live gateway with Privacy Mode (sec-p) and without (sec-a)."""
    made = []
    version = {"anthropic-version": "2023-06-01"}
    for ws_name in ("p", "a"):
        ws = gateway.workspaces[ws_name]
        host = tenant_host(ws.tenant)
        for stream in (False, True):
            for extra in ("", '[[fake:{"fault": "500"}]]', '[[fake:{"fault": "429"}]]'):
                body = {
                    "model": "claude-sonnet-4-6",
                    "max_tokens": 20,
                    "stream": stream,
                    "system": f"System note: {PROMPT_MARKER}",
                    "messages": [{"role": "user", "content": f"{PROMPT_MARKER} {extra}"}],
                }
                for auth in ({"x-api-key": ws.key}, {"authorization": f"Bearer {ws.key}"}):
                    response = httpx.post(
                        gateway.url + "/v1/messages",
                        headers={**version, **auth, "host": host},
                        json=body,
                        timeout=30,
                    )
                    scan.outputs.append(("proxy response", response.text))
                    scan.outputs += [(f"proxy header {k}", v) for k, v in response.headers.items()]
                    made.append((ws.tenant, response.headers["x-tokenscope-request-id"]))
        for path in ("/v1/messages/count_tokens", "/v1/messages"):
            response = httpx.post(
                gateway.url + path,
                headers={**version, "x-api-key": ws.key, "host": host},
                content=f'{{"model": "claude-sonnet-4-6", "messages": "{PROMPT_MARKER}'.encode(),
                timeout=30,
            )  # not valid JSON: our own 400
            scan.outputs.append(("proxy 400", response.text))
            made.append((ws.tenant, response.headers["x-tokenscope-request-id"]))
    bogus = httpx.post(
        gateway.url + "/v1/messages",
        headers={**version, "x-api-key": BOGUS_PROXY_KEY},
        json={"model": "claude-sonnet-4-6", "messages": []},
    )
    assert bogus.status_code == 401
    scan.outputs.append(("proxy 401", bogus.text))
    for tenant, request_id in made:
        wait_record(tenant, request_id)
    return made


@pytest.fixture
def broker() -> None:
    """The Celery broker's Redis DB, emptied before (it is this run's own test DB)."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    for key in client.scan_iter(match="*celery*"):
        client.delete(key)


def test_no_marker_secret_is_kept_or_shown_anywhere(
    sec_gateway, tenant_a, caplog, settings, broker, django_capture_on_commit_callbacks
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in logging.root.manager.loggerDict:
        caplog.set_level(logging.DEBUG, logger=name)
    settings.PADDLE_WEBHOOK_SECRETS = [PADDLE_SECRET]
    scan = Scan()
    shown_once: dict[str, str] = {}

    # -- sign-up, sign-in (wrong then right), password change --------------------------------
    slug = f"sec-{RUN}"
    public = Client(HTTP_HOST="localhost")
    with django_capture_on_commit_callbacks(execute=True):
        signup = public.post(
            "/signup/",
            {
                "company_name": f"Secret Scan {RUN}",
                "slug": slug,
                "name": "Sam",
                "email": f"sam@{slug}.example.com",
                "password": PASSWORD_MARKER,
                "is_adult": "on",
                "accepts_policy": "on",
            },
            follow=True,
        )
    scan.add("signup", signup)
    tenant = Tenant.objects.get(slug=slug)
    from allauth.account.models import EmailAddress

    with in_tenant(tenant):
        EmailAddress.objects.update(verified=True)
    client = Client(HTTP_HOST=tenant_host(tenant))
    scan.add(
        "login wrong",
        client.post(
            "/accounts/login/", {"login": f"sam@{slug}.example.com", "password": WRONG_PASSWORD}
        ),
    )
    scan.add(
        "login",
        client.post(
            "/accounts/login/",
            {"login": f"sam@{slug}.example.com", "password": PASSWORD_MARKER},
            follow=True,
        ),
    )
    with django_capture_on_commit_callbacks(execute=True):
        scan.add(
            "password change",
            client.post(
                "/accounts/password/change/",
                {
                    "oldpassword": PASSWORD_MARKER,
                    "password1": PASSWORD_MARKER_2,
                    "password2": PASSWORD_MARKER_2,
                },
                follow=True,
            ),
        )

    with in_tenant(tenant):
        from accounts.models import User

        assert User.objects.get(email=f"sam@{slug}.example.com").check_password(PASSWORD_MARKER_2)
    with django_capture_on_commit_callbacks(execute=True):
        scan.add(
            "invite",
            client.post("/team/invite/", {"email": f"new@{slug}.example.com", "role": "member"}),
        )
        scan.add(
            "password reset",
            Client(HTTP_HOST=tenant_host(tenant)).post(
                "/accounts/password/reset/", {"email": f"sam@{slug}.example.com"}
            ),
        )

    # -- Anthropic key set and replaced; proxy key and API token made on the pages -------------
    owner = owner_of(tenant_a)
    pages = tenant_client(tenant_a, owner)
    with in_tenant(tenant_a):
        center = CostCenter.objects.filter(code="SCAN").first() or cost_center_create(
            owner, tenant=tenant_a, code="SCAN", name="Scan"
        )
        project = Project.objects.filter(name="Scan").first() or project_create(
            owner, tenant=tenant_a, name="Scan", default_cost_center=center
        )
    with django_capture_on_commit_callbacks(execute=True):
        for key in (ANTHROPIC_KEY, ANTHROPIC_KEY_2, ANTHROPIC_KEY + "!"):
            scan.add("key set", pages.post("/anthropic-key/set/", {"key": key}, follow=True))
        created = pages.post("/keys/new/", {"project": project.pk, "name": "scan"})
        match = re.search(rb"tsk_[A-Za-z0-9]+_[A-Za-z0-9_-]{20,}", created.content)
        assert match is not None
        shown_once["proxy key"] = match.group().decode()
        made = pages.post("/settings/api-tokens/", {"name": "scan", "scope": "write"})
        match = re.search(rb"tsa_[A-Za-z0-9]+_[A-Za-z0-9_-]{20,}", made.content)
        assert match is not None
        shown_once["api token"] = match.group().decode()
    for name in ("anthropic_key", "proxy_keys", "api_tokens", "onboarding", "audit_log"):
        from django.urls import reverse

        scan.add(f"page {name}", pages.get(reverse(name)))
    viewer = tenant_client(tenant_a, make_user(tenant_a, Role.VIEWER))
    scan.add("viewer keys page", viewer.get("/keys/"))

    # -- the API with the token, and a bogus one ------------------------------------------------
    api = Client(
        HTTP_HOST=tenant_host(tenant_a), HTTP_AUTHORIZATION=f"Bearer {shown_once['api token']}"
    )
    for path in (
        "/api/v1/usage/",
        "/api/v1/proxy-keys/",
        "/api/v1/audit-events/",
        "/api/v1/projects/",
    ):
        response = scan.add(f"api {path}", api.get(path))
        assert response.status_code == 200, path
    with django_capture_on_commit_callbacks(execute=True):
        scan.add(
            "api export",
            api.post(
                "/api/v1/exports/",
                {"kind": "usage", "format": "csv"},
                content_type="application/json",
            ),
        )
    bogus = Client(HTTP_HOST=tenant_host(tenant_a), HTTP_AUTHORIZATION=f"Bearer {BOGUS_API_TOKEN}")
    assert scan.add("api bogus", bogus.get("/api/v1/usage/")).status_code == 401

    # -- Paddle webhooks: right and wrong signature --------------------------------------------
    assert scan.add("webhook", _webhook(public, PADDLE_SECRET)).status_code == 200
    assert scan.add("webhook bad", _webhook(public, PADDLE_SECRET + "x")).status_code in (
        400,
        401,
        403,
    )

    # -- the proxy, then exports and pages of the Privacy Mode workspace ------------------------
    calls = _proxy_calls(sec_gateway, scan)
    private = sec_gateway.workspaces["p"].tenant
    private_pages = tenant_client(private, owner_of(private))
    scan.add("export csv", private_pages.get("/usage/export/?format=csv"))
    scan.add("export jsonl", private_pages.get("/usage/export/?format=jsonl"))
    for tenant_, request_id in calls:
        if tenant_ == private:
            scan.add("usage record page", private_pages.get(f"/usage/{request_id}/"))
    scan.add("usage log", private_pages.get("/usage/"))
    with django_capture_on_commit_callbacks(execute=True):
        scan.add(
            "export request",
            private_pages.post("/exports/new/", {"kind": "usage", "format": "jsonl"}, follow=True),
        )

    # -- the scan --------------------------------------------------------------------------------
    secrets_everywhere = {
        "anthropic key": ANTHROPIC_KEY,
        "anthropic key 2": ANTHROPIC_KEY_2,
        "anthropic key (sec-p)": sec_gateway_key(sec_gateway, "p"),
        "password": PASSWORD_MARKER,
        "password 2": PASSWORD_MARKER_2,
        "wrong password": WRONG_PASSWORD,
        "paddle secret": PADDLE_SECRET,
        "bogus proxy key": BOGUS_PROXY_KEY,
        "bogus api token": BOGUS_API_TOKEN,
        "proxy key (sec-p)": sec_gateway.workspaces["p"].key,
        "proxy key (sec-a)": sec_gateway.workspaces["a"].key,
    }
    in_page_once = dict(shown_once.items())
    needles = {
        name: encodings(value) for name, value in {**secrets_everywhere, **in_page_once}.items()
    }
    for name, value in list(secrets_everywhere.items()) + list(in_page_once.items()):
        needles[name] += encodings(value[:-4])  # all but a displayed hint
    found: list[str] = []

    def check(where: str, text: str, skip: Iterable[str] = ()) -> None:
        for name, variants in needles.items():
            if name in skip:
                continue
            for variant in variants:
                if variant in text:
                    found.append(f"{name} in {where}")
                    break

    # The page that made a key/token shows it once: everything else is scanned for it.
    assert shown_once["proxy key"].encode() in created.content
    assert shown_once["api token"].encode() in made.content
    # The scanner itself: it finds each shown-once value on its page, also base64-encoded.
    check("control", created.content.decode() + made.content.decode())
    check("control b64", base64.b64encode(ANTHROPIC_KEY.encode()).decode())
    assert {f.split(" in ")[0] for f in found} == {"proxy key", "api token", "anthropic key"}
    found.clear()
    for where, text in scan.outputs:
        check(where, text)
    for record in caplog.records:
        check(f"log {record.name}", record.getMessage())
        check(f"log args {record.name}", repr(record.args))
        if record.exc_info:
            check(
                f"log traceback {record.name}", logging.Formatter().formatException(record.exc_info)
            )
    for message in mail.outbox:
        body = message.subject + message.body
        body += "".join(str(content) for content, _ in getattr(message, "alternatives", []))
        check("email", body)
    broker_items = 0
    for where, text in redis_dump():
        broker_items += 1
        check(where, text)
    rows = 0
    prompt_in_a = False
    for where, text in dump_all_schemas():
        rows += 1
        check(where, text)
        if PROMPT_MARKER in text:
            schema = where.split(".", 1)[0]
            if schema == private.schema_name:
                found.append(f"Privacy Mode prompt in {where}")
            elif schema == sec_gateway.workspaces["a"].tenant.schema_name:
                prompt_in_a = True
    for where, text in scan.outputs:
        if ("export" in where or "usage" in where) and PROMPT_MARKER in text:
            found.append(f"Privacy Mode prompt in {where}")
    print(
        f"\n[secrets] {len(needles)} markers x encodings over {len(scan.outputs)} outputs, "
        f"{len(caplog.records)} log records, {len(mail.outbox)} emails, {broker_items} broker "
        f"items, {rows} column values: {len(found)} found"
    )
    assert prompt_in_a, "the scan must see the prompt kept where Privacy Mode is off"
    assert len(mail.outbox) > 0
    assert broker_items > 0
    assert not found, "\n".join(sorted(set(found)))


def sec_gateway_key(gateway: Any, name: str) -> str:
    from tests.conftest import SEC_ANTHROPIC_KEYS

    return SEC_ANTHROPIC_KEYS[name]
