"""Proxy keys and the Anthropic key: services, CLI, upstream verification and pages."""

import io
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from audit.models import AuditEvent
from conftest import in_tenant, make_user, owner_of, tenant_client
from proxy.custody import anthropic_key_plaintext
from proxy.models import AnthropicCredential, Project, ProxyKey, proxy_key_hash
from proxy.selectors import (
    anthropic_credential_for,
    onboarding_status,
    proxy_key_for_secret,
)
from proxy.services import (
    anthropic_credential_set,
    anthropic_key_validate,
    cost_center_create,
    project_archive,
    project_create,
    proxy_key_create,
    proxy_key_last_used_record,
    proxy_key_revoke,
)
from proxy.tests.custody_support import MARKER_KEY, OTHER_KEY
from proxy.upstream import AnthropicKeyRejected, AnthropicUnreachable, anthropic_key_verify
from tokenscope.lib.errors import DomainError, PermissionDenied


def _workspace(tenant):  # type: ignore[no-untyped-def]
    with in_tenant(tenant):
        center = cost_center_create(None, tenant=tenant, code="CC-7", name="Platform")
        project = project_create(None, tenant=tenant, name="Agent", default_cost_center=center)
    return project, center


# ---- a fake Anthropic /v1/models ----------------------------------------------------------------


class _Models(BaseHTTPRequestHandler):
    seen_keys: list[str] = []

    def do_GET(self) -> None:
        _Models.seen_keys.append(self.headers.get("x-api-key", ""))
        good = self.headers.get("x-api-key") == MARKER_KEY and self.path.startswith("/v1/models")
        body = (
            {"data": [], "has_more": False}
            if good
            else {
                "type": "error",
                "error": {"type": "authentication_error", "message": "invalid x-api-key"},
            }
        )
        self.send_response(200 if good else 401)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(body).encode())

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def fake_anthropic() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Models)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    with override_settings(ANTHROPIC_UPSTREAM_URL=url):
        yield url
    server.shutdown()
    server.server_close()


def test_anthropic_key_verify_accepts_a_good_key_and_names_a_401_clearly(fake_anthropic) -> None:
    anthropic_key_verify(MARKER_KEY)
    with pytest.raises(AnthropicKeyRejected, match="rejected this key") as caught:
        anthropic_key_verify(OTHER_KEY)
    assert OTHER_KEY not in caught.value.message


def test_anthropic_key_verify_reports_an_unreachable_upstream_without_the_key() -> None:
    with (
        override_settings(ANTHROPIC_UPSTREAM_URL="http://127.0.0.1:9"),
        pytest.raises(AnthropicUnreachable) as caught,
    ):
        anthropic_key_verify(MARKER_KEY)
    assert MARKER_KEY not in str(caught.value)
    assert caught.value.__cause__ is None


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("sk-proj-abc", "does not look like"),
        ("sk-ant-api03-short", "does not look like"),
        ("sk-ant-api03-" + "a" * 40 + " b", "does not look like"),
        ("sk-ant-api03-" + "a" * 40 + "!", "does not look like"),
        ("sk-ant-admin01-" + "a" * 90, "not a standard"),
        ("sk-ant-oat01-" + "a" * 90, "not a standard"),
    ],
)
def test_the_key_shape_is_checked_before_saving(key: str, message: str) -> None:
    with pytest.raises(DomainError, match=message) as caught:
        anthropic_key_validate(key)
    assert key not in caught.value.message


def test_a_valid_key_is_accepted_with_surrounding_whitespace_trimmed() -> None:
    assert anthropic_key_validate(f"  {MARKER_KEY}\n") == MARKER_KEY


def test_credential_lookup_prefers_the_projects_own_key_then_the_tenant_default(tenant_a) -> None:
    project, _ = _workspace(tenant_a)
    with in_tenant(tenant_a):
        other = project_create(None, tenant=tenant_a, name="Other")
        assert anthropic_credential_for(project.pk) is None
        default = anthropic_credential_set(None, tenant=tenant_a, key=MARKER_KEY)
        own = anthropic_credential_set(None, tenant=tenant_a, key=OTHER_KEY, project=project)
        assert anthropic_credential_for(project.pk) == own
        assert anthropic_credential_for(other.pk) == default
        assert anthropic_credential_for(None) == default
        project_archive(None, tenant=tenant_a, project=project)
        assert anthropic_credential_for(project.pk) is None
    assert anthropic_key_plaintext(own, tenant=tenant_a) == OTHER_KEY


def test_proxy_keys_are_long_random_hashed_and_bound_to_project_and_cost_center(tenant_a) -> None:
    project, center = _workspace(tenant_a)
    with in_tenant(tenant_a):
        proxy_key, key = proxy_key_create(
            None, tenant=tenant_a, project=project, cost_center=center
        )
        stored = ProxyKey.objects.get(pk=proxy_key.pk)
        assert proxy_key_for_secret(key) == stored
        assert proxy_key_for_secret(key + "x") is None
    prefix, short_id, secret = key.split("_", 2)
    assert (prefix, short_id) == ("tsk", tenant_a.short_id)
    assert len(secret) >= 43  # 32 random bytes, url-safe base64
    assert stored.key_hash == proxy_key_hash(key)
    assert key not in stored.prefix
    assert stored.prefix.startswith(f"tsk_{tenant_a.short_id}_")
    assert (stored.project_id, stored.cost_center_id) == (project.pk, center.pk)


def test_revoked_expired_and_archived_keys_are_not_usable(tenant_a) -> None:
    project, center = _workspace(tenant_a)
    with in_tenant(tenant_a):
        revoked, revoked_key = proxy_key_create(
            None, tenant=tenant_a, project=project, cost_center=center
        )
        proxy_key_revoke(None, tenant=tenant_a, proxy_key=revoked)
        expiring, expiring_key = proxy_key_create(
            None,
            tenant=tenant_a,
            project=project,
            cost_center=center,
            expires_at=timezone.now() + timedelta(days=1),
        )
        ProxyKey.objects.filter(pk=expiring.pk).update(expires_at=timezone.now())
        _, live_key = proxy_key_create(None, tenant=tenant_a, project=project, cost_center=center)
        assert proxy_key_for_secret(revoked_key) is None
        assert proxy_key_for_secret(expiring_key) is None
        assert proxy_key_for_secret(live_key) is not None
        project_archive(None, tenant=tenant_a, project=project)
        assert proxy_key_for_secret(live_key) is None
        assert AuditEvent.objects.filter(action="proxy_key.revoked").count() == 1


def test_last_used_times_are_recorded_in_batches_and_never_go_backwards(tenant_a) -> None:
    project, center = _workspace(tenant_a)
    now = timezone.now()
    with in_tenant(tenant_a):
        proxy_key, _ = proxy_key_create(None, tenant=tenant_a, project=project, cost_center=center)
        assert proxy_key_last_used_record({proxy_key.pk: now}) == 1
        assert proxy_key_last_used_record({proxy_key.pk: now - timedelta(minutes=1)}) == 0
        assert ProxyKey.objects.get(pk=proxy_key.pk).last_used_at == now


def test_members_create_keys_only_for_themselves_and_revoke_only_their_own(tenant_a) -> None:
    project, center = _workspace(tenant_a)
    member = make_user(tenant_a, Role.MEMBER)
    other = make_user(tenant_a, Role.MEMBER)
    viewer = make_user(tenant_a, Role.VIEWER)
    with in_tenant(tenant_a):
        mine, _ = proxy_key_create(member, tenant=tenant_a, project=project, cost_center=center)
        assert mine.owner == member
        with pytest.raises(PermissionDenied):
            proxy_key_create(
                member, tenant=tenant_a, project=project, cost_center=center, owner=other
            )
        with pytest.raises(PermissionDenied):
            proxy_key_create(viewer, tenant=tenant_a, project=project, cost_center=center)
        with pytest.raises(PermissionDenied):
            proxy_key_revoke(other, tenant=tenant_a, proxy_key=mine)
        proxy_key_revoke(member, tenant=tenant_a, proxy_key=mine)
        with pytest.raises(PermissionDenied):
            anthropic_credential_set(member, tenant=tenant_a, key=MARKER_KEY)


def test_one_tenant_default_and_one_key_per_project(tenant_a) -> None:
    project, _ = _workspace(tenant_a)
    with in_tenant(tenant_a):
        first = anthropic_credential_set(None, tenant=tenant_a, key=MARKER_KEY)
        again = anthropic_credential_set(None, tenant=tenant_a, key=OTHER_KEY)
        anthropic_credential_set(None, tenant=tenant_a, key=OTHER_KEY, project=project)
        assert first.pk == again.pk
        assert AnthropicCredential.objects.count() == 2
        actions = list(
            AuditEvent.objects.filter(object_type="anthropic_credential")
            .order_by("id")
            .values_list("action", flat=True)
        )
    assert actions == [
        "anthropic_credential.created",
        "anthropic_credential.replaced",
        "anthropic_credential.created",
    ]


# ---- CLI --------------------------------------------------------------------------------------


def _cli(*args: str) -> dict:
    out = io.StringIO()
    call_command(*args, "--json", stdout=out)
    return json.loads(out.getvalue())


def test_anthropic_key_set_command_prints_only_id_and_hint(tenant_a) -> None:
    result = _cli("anthropic_key_set", "--tenant", tenant_a.slug, "--key", MARKER_KEY)
    assert set(result) == {"id", "hint"}
    assert result["hint"] == MARKER_KEY[-4:]
    with in_tenant(tenant_a):
        assert AnthropicCredential.objects.filter(pk=result["id"], project=None).exists()


def test_proxy_key_add_command_creates_missing_project_and_cost_center_with_create(
    tenant_a,
) -> None:
    with pytest.raises(CommandError, match="use --create"):
        _cli("proxy_key_add", "--tenant", tenant_a.slug, "--project", "P1", "--cost-center", "C1")
    result = _cli(
        "proxy_key_add",
        "--tenant",
        tenant_a.slug,
        "--project",
        "P1",
        "--cost-center",
        "C1",
        "--name",
        "ci",
        "--create",
    )
    assert set(result) == {"id", "key", "project", "cost_center"}
    assert (result["project"], result["cost_center"]) == ("P1", "C1")
    assert result["key"].startswith(f"tsk_{tenant_a.short_id}_")
    with in_tenant(tenant_a):
        assert proxy_key_for_secret(result["key"]).name == "ci"  # type: ignore[union-attr]
        assert Project.objects.get(name="P1").default_cost_center.code == "C1"  # type: ignore[union-attr]


def test_commands_refuse_an_unknown_tenant(db) -> None:
    with pytest.raises(CommandError, match="No tenant"):
        _cli("anthropic_key_set", "--tenant", "nope-nope", "--key", MARKER_KEY)


# ---- pages ------------------------------------------------------------------------------------


def test_a_member_creates_a_key_and_sees_it_once_with_snippets(tenant_a) -> None:
    project, center = _workspace(tenant_a)
    member = make_user(tenant_a, Role.MEMBER)
    client = tenant_client(tenant_a, member)
    response = client.post(
        reverse("proxy_key_create"), {"name": "laptop", "project": project.pk}
    )  # the cost center defaults to the project's
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    with in_tenant(tenant_a):
        proxy_key = ProxyKey.objects.get(name="laptop")
    assert proxy_key.cost_center_id == center.pk
    assert proxy_key.owner_id == member.pk
    html = response.content.decode()
    key = html.split("<pre><code>", 1)[1].split("</code>", 1)[0]
    assert key.startswith(f"tsk_{tenant_a.short_id}_")
    assert f'api_key="{key}"' in html
    assert "export ANTHROPIC_BASE_URL=http://localhost" in html
    assert f"x-api-key: {key}" in html
    listing = client.get(reverse("proxy_keys")).content.decode()
    assert key not in listing
    assert proxy_key.prefix in listing


def test_a_viewer_sees_the_key_list_but_no_form_and_cannot_create_or_revoke(tenant_a) -> None:
    project, center = _workspace(tenant_a)
    with in_tenant(tenant_a):
        proxy_key, _ = proxy_key_create(None, tenant=tenant_a, project=project, cost_center=center)
    client = tenant_client(tenant_a, make_user(tenant_a, Role.VIEWER))
    page = client.get(reverse("proxy_keys"))
    assert page.status_code == 200
    assert proxy_key.prefix.encode() in page.content
    assert b"Create key" not in page.content
    data = {"project": project.pk, "cost_center": center.pk}
    assert client.post(reverse("proxy_key_create"), data).status_code == 403
    assert client.post(reverse("proxy_key_revoke", args=[proxy_key.pk])).status_code == 403


def test_a_member_cannot_revoke_someone_elses_key(tenant_a) -> None:
    project, center = _workspace(tenant_a)
    with in_tenant(tenant_a):
        proxy_key, _ = proxy_key_create(None, tenant=tenant_a, project=project, cost_center=center)
    client = tenant_client(tenant_a, make_user(tenant_a, Role.MEMBER))
    assert client.post(reverse("proxy_key_revoke", args=[proxy_key.pk])).status_code == 403
    admin = tenant_client(tenant_a, make_user(tenant_a, Role.ADMIN))
    assert admin.post(reverse("proxy_key_revoke", args=[proxy_key.pk])).status_code == 302
    with in_tenant(tenant_a):
        assert ProxyKey.objects.get(pk=proxy_key.pk).status == "revoked"


def test_the_anthropic_key_page_sets_verifies_and_deletes_showing_only_the_hint(
    tenant_a, fake_anthropic
) -> None:
    client = tenant_client(tenant_a, owner_of(tenant_a))
    response = client.post(reverse("anthropic_key_set"), {"key": OTHER_KEY, "verify": "on"})
    assert response.status_code == 200
    assert b"rejected this key" in response.content
    assert OTHER_KEY.encode() not in response.content
    response = client.post(reverse("anthropic_key_set"), {"key": MARKER_KEY, "verify": "on"})
    assert response.status_code == 302
    page = client.get(reverse("anthropic_key"))
    assert f"sk-ant-…{MARKER_KEY[-4:]}" in page.content.decode()
    assert MARKER_KEY.encode() not in page.content
    assert "no-store" in page["Cache-Control"]
    with in_tenant(tenant_a):
        credential = AnthropicCredential.objects.get()
    response = client.post(reverse("anthropic_key_delete", args=[credential.pk]))
    assert response.status_code == 302
    with in_tenant(tenant_a):
        assert not AnthropicCredential.objects.exists()


def test_a_malformed_key_is_refused_on_the_page_without_being_echoed(tenant_a) -> None:
    client = tenant_client(tenant_a, owner_of(tenant_a))
    bad = "sk-ant-api03-" + "Zz" * 30 + "!!"
    response = client.post(reverse("anthropic_key_set"), {"key": bad})
    assert response.status_code == 200
    assert b"does not look like" in response.content
    assert bad.encode() not in response.content


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
def test_members_and_viewers_cannot_set_or_delete_the_anthropic_key(tenant_a, role) -> None:
    with in_tenant(tenant_a):
        credential = anthropic_credential_set(None, tenant=tenant_a, key=MARKER_KEY)
    client = tenant_client(tenant_a, make_user(tenant_a, role))
    page = client.get(reverse("anthropic_key"))
    assert page.status_code == 200
    assert b"Save key" not in page.content
    assert client.post(reverse("anthropic_key_set"), {"key": OTHER_KEY}).status_code == 403
    delete = reverse("anthropic_key_delete", args=[credential.pk])
    assert client.post(delete).status_code == 403
    with in_tenant(tenant_a):
        assert AnthropicCredential.objects.filter(pk=credential.pk).exists()


def test_another_tenants_key_and_credential_ids_give_404(tenant_a, tenant_b) -> None:
    project, center = _workspace(tenant_a)
    with in_tenant(tenant_a):
        proxy_key, _ = proxy_key_create(None, tenant=tenant_a, project=project, cost_center=center)
        credential = anthropic_credential_set(None, tenant=tenant_a, key=MARKER_KEY)
    client = tenant_client(tenant_b, owner_of(tenant_b))
    assert client.post(reverse("proxy_key_revoke", args=[proxy_key.pk])).status_code == 404
    assert client.post(reverse("anthropic_key_delete", args=[credential.pk])).status_code == 404
    assert proxy_key.prefix.encode() not in client.get(reverse("proxy_keys")).content
    with in_tenant(tenant_a):
        assert ProxyKey.objects.get(pk=proxy_key.pk).status == "active"


def test_the_onboarding_checklist_tracks_progress_and_fills_in_the_base_url(tenant_a) -> None:
    client = tenant_client(tenant_a, make_user(tenant_a, Role.VIEWER))
    page = client.get(reverse("onboarding")).content.decode()
    assert page.count("To do:") == 3
    assert 'base_url="http://localhost"' in page
    assert 'baseURL: "http://localhost"' in page
    assert "YOUR_PROXY_KEY" in page
    project, center = _workspace(tenant_a)
    with in_tenant(tenant_a):
        anthropic_credential_set(None, tenant=tenant_a, key=MARKER_KEY)
        proxy_key_create(None, tenant=tenant_a, project=project, cost_center=center)
        assert onboarding_status()["done"] is True
    page = client.get(reverse("onboarding")).content.decode()
    assert page.count("✓ Done:") == 3
