"""A marker Anthropic key goes through every flow; afterwards its plaintext is nowhere.

Checked: every text/bytea/json column of the tenant and public schemas (except the encrypted
column), logs, emails, HTML, CLI output, admin pages, audit rows, error messages, tracebacks.
"""

import base64
import io
import logging
import sys
from collections.abc import Iterable

import pytest
from django.contrib import admin
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test import RequestFactory, override_settings
from django.urls import reverse
from django.views.debug import ExceptionReporter

from accounts.models import Role
from conftest import in_tenant, make_user, owner_of, tenant_client
from proxy.custody import (
    KeyCustodyUnavailable,
    anthropic_key_plaintext,
    kek_provider_set,
    plaintext_cache,
)
from proxy.models import AnthropicCredential, Project, ProxyKey
from proxy.services import (
    anthropic_credential_set,
    anthropic_credentials_rewrap,
    cost_center_create,
    project_create,
)
from proxy.tests.custody_support import MARKER_KEY, MARKER_MIDDLE, make_azure, use
from proxy.tests.test_keys import fake_anthropic  # noqa: F401  (fixture)

NEEDLES = [
    MARKER_KEY,
    MARKER_MIDDLE,
    MARKER_KEY[:-4],  # everything but the hint
    base64.b64encode(MARKER_KEY.encode()).decode(),
    MARKER_KEY.encode().hex(),
]


def assert_clean(text: str | bytes, where: str) -> None:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    for needle in NEEDLES:
        assert needle not in text, f"key material found in {where}"


def dump_schema(schema: str) -> Iterable[tuple[str, str, object]]:
    """Every value of every text-like, bytea and json column of every table in `schema`."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.table_name, c.column_name FROM information_schema.columns c "
            "JOIN information_schema.tables t ON t.table_schema = c.table_schema "
            "AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE' "
            "WHERE c.table_schema = %s AND c.data_type IN "
            "('text', 'character varying', 'character', 'bytea', 'json', 'jsonb', 'USER-DEFINED')",
            [schema],
        )
        columns = cursor.fetchall()
        for table, column in columns:
            cursor.execute(f'SELECT "{column}" FROM "{schema}"."{table}"')  # noqa: S608
            for (value,) in cursor.fetchall():
                yield table, column, value


def test_a_marker_key_leaves_no_plaintext_anywhere(tenant_a, caplog, fake_anthropic) -> None:  # noqa: F811
    for name in ("", "proxy", "httpx", "httpcore", "azure", "django", "audit"):
        caplog.set_level(logging.DEBUG, logger=name or None)
    under_test = make_azure()
    use(under_test.provider)
    transport = under_test.transport
    assert transport is not None
    outputs: list[tuple[str, str | bytes]] = []
    owner = owner_of(tenant_a)
    try:
        # CLI, with and without --json.
        for extra in ([], ["--json"]):
            out, err = io.StringIO(), io.StringIO()
            call_command(
                "anthropic_key_set",
                "--tenant",
                tenant_a.slug,
                "--key",
                MARKER_KEY,
                "--verify",
                *extra,
                stdout=out,
                stderr=err,
            )
            outputs += [("cli stdout", out.getvalue()), ("cli stderr", err.getvalue())]
        # Pages: set (bad verify, good verify), project key, list pages, onboarding.
        client = tenant_client(tenant_a, owner)
        with in_tenant(tenant_a):
            center = cost_center_create(owner, tenant=tenant_a, code="LEAK", name="Leak test")
            project = project_create(
                owner, tenant=tenant_a, name="Leaky", default_cost_center=center
            )
        wrong = MARKER_KEY[:-6] + "zzzzzz"
        for data in (
            {"key": wrong, "verify": "on"},
            {"key": MARKER_KEY, "verify": "on"},
            {"key": MARKER_KEY, "project": project.pk},
            {"key": MARKER_KEY + "!"},  # malformed
        ):
            response = client.post(reverse("anthropic_key_set"), data, follow=True)
            outputs.append(("set page", response.content))
            outputs += [("cookie", str(cookie)) for cookie in response.cookies.values()]
        response = client.post(reverse("proxy_key_create"), {"project": project.pk, "name": "leak"})
        outputs.append(("key create page", response.content))
        for name in ("anthropic_key", "proxy_keys", "projects", "cost_centers", "onboarding"):
            for user in (owner, make_user(tenant_a, Role.VIEWER)):
                page = tenant_client(tenant_a, user).get(reverse(name))
                assert page.status_code == 200
                outputs.append((f"page {name}", page.content))
        # The hot path, a KEK rotation and rewrap, and an outage with a cold cache.
        with in_tenant(tenant_a):
            credential = AnthropicCredential.objects.get(project=None)
        assert anthropic_key_plaintext(credential, tenant=tenant_a) == MARKER_KEY
        use(under_test.rotate())
        with in_tenant(tenant_a):
            assert anthropic_credentials_rewrap(tenant=tenant_a)["rewrapped"] == 2
            credential = AnthropicCredential.objects.get(project=None)
        transport.down = True
        plaintext_cache.clear()
        use(under_test.rotate())
        with pytest.raises(KeyCustodyUnavailable) as outage:
            anthropic_key_plaintext(credential, tenant=tenant_a)
        outputs.append(("outage error", str(outage.value)))
        transport.down = False
        # Admin pages, rendered inside the tenant schema by an operator.
        factory = RequestFactory()
        with in_tenant(tenant_a), override_settings(ROOT_URLCONF="tokenscope.urls_public"):
            operator = make_user(tenant_a, Role.OWNER)
            operator.is_staff = operator.is_superuser = True
            operator.save()
            for model in (AnthropicCredential, ProxyKey, Project):
                model_admin = admin.site._registry[model]
                request = factory.get("/admin/")
                request.user = operator
                outputs.append(
                    (
                        f"admin list {model.__name__}",
                        model_admin.changelist_view(request).render().content,
                    )
                )
            request = factory.get("/admin/")
            request.user = operator
            change = admin.site._registry[AnthropicCredential].change_view(
                request, str(credential.pk)
            )
            outputs.append(("admin change", change.render().content))

        # A crash while saving: the traceback report must not show the key either.
        class Exploding:
            name = "exploding"
            current_kek_id = "local:boom"

            def wrap(self, dek: bytes) -> tuple[bytes, str, str]:
                raise RuntimeError("KEK exploded")

            def unwrap(self, wrapped: bytes, kek_id: str, alg: str) -> bytes:
                raise RuntimeError("KEK exploded")

        kek_provider_set(Exploding())  # type: ignore[arg-type]
        with in_tenant(tenant_a):
            try:
                anthropic_credential_set(owner, tenant=tenant_a, key=MARKER_KEY)
            except RuntimeError:
                exc_type, exc, tb = sys.exc_info()
                # Skip this test's own frame: its locals hold the marker on purpose.
                report = ExceptionReporter(None, exc_type, exc, tb.tb_next)  # type: ignore[union-attr]
                text = report.get_traceback_text()
                assert "in anthropic_credential_set" in text
                assert "in seal" in text
                assert "********************" in text  # sensitive_variables did the hiding
                outputs.append(("traceback text", text))
                outputs.append(("traceback html", report.get_traceback_html()))
    finally:
        kek_provider_set(None)
        plaintext_cache.clear()

    assert any(MARKER_KEY[-4:] in str(text) for _, text in outputs)  # the hint is shown
    for where, text in outputs:
        assert_clean(text, where)
    for record in caplog.records:
        assert_clean(record.getMessage(), f"log {record.name}")
        assert_clean(str(record.args), f"log args {record.name}")
    for message in mail.outbox:
        assert_clean(message.subject + message.body, "email")
    for body in transport.bodies:
        assert MARKER_KEY.encode() not in body  # Key Vault sees data keys, never the API key
    rows = 0
    for schema in (tenant_a.schema_name, "public"):
        for table, column, value in dump_schema(schema):
            if (table, column) == ("proxy_anthropiccredential", "ciphertext"):
                continue
            rows += 1
            raw = bytes(value) if isinstance(value, memoryview | bytes) else str(value)
            assert_clean(raw, f"{schema}.{table}.{column}")
    assert rows > 0
