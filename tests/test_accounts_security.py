"""Accounts: login rate limits, session fixation, CSRF on every state-changing route, password
policy, MFA bypass attempts and privilege escalation between roles."""

import re
import time
from typing import Any

import pytest
import time_machine
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.contrib.sessions.backends.db import SessionStore
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import resolve

from accounts.models import Role, User
from accounts.tests.test_mfa import _open_totp_activation, totp
from audit.insight import api_token_create
from conftest import PASSWORD, in_tenant, make_user, owner_of, tenant_client
from tenants.services import tenant_host
from tests.test_isolation_suite import (
    GUESSES,
    Route,
    _guesses,
    dump,
    routes,
    tenant_b_objects,
)

pytestmark = pytest.mark.django_db


def _login(client: Client, email: str, password: str) -> Any:
    return client.post("/accounts/login/", {"login": email, "password": password})


def _signed_in(client: Client) -> bool:
    return client.get("/").status_code == 200


# ---- login rate limiting ---------------------------------------------------------------------


def _per_hour(rate: str) -> float:
    amount, period, *_ = rate.split("/")
    match = re.fullmatch(r"(\d*)([smhd])", period)
    assert match is not None
    seconds = int(match.group(1) or 1) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return int(amount) * 3600 / seconds


def test_failed_logins_per_account_stay_within_asvs_100_an_hour() -> None:
    rates = settings.ACCOUNT_RATE_LIMITS["login_failed"].split(",")
    per_key = [_per_hour(rate) for rate in rates if rate.endswith("/key")]
    assert per_key
    assert max(per_key) <= 100


def test_the_sixth_bad_password_within_five_minutes_is_refused_even_when_right(tenant_a) -> None:
    user = make_user(tenant_a, Role.MEMBER, email="ratelimit@a.example.com")
    now = time.time()
    with time_machine.travel(now, tick=False):
        for attempt in range(5):
            # A fresh client (and address) each time: the limit is per account, not per cookie.
            client = tenant_client(tenant_a)
            bad = client.post(
                "/accounts/login/",
                {"login": user.email, "password": f"wrong-{attempt}-password"},
                REMOTE_ADDR=f"198.51.100.{attempt + 1}",
            )
            assert bad.status_code == 200
            assert not _signed_in(client)
        client = tenant_client(tenant_a)
        sixth = client.post(
            "/accounts/login/",
            {"login": user.email, "password": PASSWORD},
            REMOTE_ADDR="198.51.100.77",
        )
        assert sixth.status_code in (200, 429)
        assert b"Too many" in sixth.content
        assert not _signed_in(client)
    with time_machine.travel(now + 5 * 60 + 1, tick=False):  # the window has passed
        client = tenant_client(tenant_a)
        assert _login(client, user.email, PASSWORD).status_code == 302
        assert _signed_in(client)


# ---- session fixation ------------------------------------------------------------------------


def test_signing_in_replaces_a_session_key_planted_before(tenant_a) -> None:
    user = make_user(tenant_a, Role.MEMBER, email="fixation@a.example.com")
    with in_tenant(tenant_a):
        planted = SessionStore()
        planted["planted"] = True
        planted.create()
    client = tenant_client(tenant_a)
    client.cookies[settings.SESSION_COOKIE_NAME] = planted.session_key

    assert _login(client, user.email, PASSWORD).status_code == 302

    new_key = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert new_key != planted.session_key
    with in_tenant(tenant_a):
        assert not SessionStore().exists(planted.session_key)
    attacker = tenant_client(tenant_a)
    attacker.cookies[settings.SESSION_COOKIE_NAME] = planted.session_key
    assert not _signed_in(attacker)


# ---- CSRF ------------------------------------------------------------------------------------


def _any_path(route: Route) -> str:
    values = {param: _guesses(route, param)[0] for param in route.params}
    path = route.template.format(**values)
    resolve(path, route.urlconf)
    return path


def test_only_the_paddle_webhook_is_exempt_from_csrf() -> None:
    exempt = set()
    for urlconf in ("tokenscope.urls_tenant", "tokenscope.urls_public"):
        for route in routes(urlconf):
            match = resolve(_any_path(route), urlconf)
            if getattr(match.func, "csrf_exempt", False):
                exempt.add(route.name)
    # DRF marks its views exempt and enforces CSRF itself for session-authenticated requests
    # (checked below); Bearer tokens are not sent by browsers on their own.
    exempt = {name for name in exempt if not name.startswith("api-") and name != "api-schema"}
    assert exempt == {"paddle_webhook"}


def test_every_post_without_a_csrf_token_is_refused(tenant_a) -> None:
    owner = owner_of(tenant_a)
    count = 0
    failures = []
    for urlconf, host in (
        ("tokenscope.urls_tenant", tenant_host(tenant_a)),
        ("tokenscope.urls_public", "localhost"),
    ):
        for route in routes(urlconf):
            if route.name == "paddle_webhook":
                continue
            client = Client(HTTP_HOST=host, enforce_csrf_checks=True)
            if urlconf == "tokenscope.urls_tenant":
                with in_tenant(tenant_a):
                    client.force_login(owner)
            for method in ("post", "put", "patch", "delete"):
                if method != "post" and not route.template.startswith("/api/"):
                    continue
                path = _any_path(route)
                response = getattr(client, method)(path, {"role": "owner"})
                count += 1
                if response.status_code != 403:
                    failures.append(f"{method.upper()} {path}: {response.status_code}")
    print(f"\n[csrf] {count} state-changing requests without a token, all 403")
    assert count > 100
    assert not failures, "\n".join(failures)


# ---- password policy -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "password",
    ["short-pw-1", "password1234", "123456789012345", "qwertyuiop123", "1q2w3e4r5t6y"],
)
def test_short_common_and_numeric_passwords_are_refused(password) -> None:
    with pytest.raises(ValidationError):
        validate_password(password)


def test_signup_refuses_a_weak_password_and_accepts_a_long_one(public_client) -> None:
    def signup(password: str, slug: str) -> Any:
        return public_client.post(
            "/signup/",
            {
                "company_name": f"Pw {slug}",
                "slug": slug,
                "name": "Pat",
                "email": f"pat@{slug}.example.com",
                "password": password,
                "is_adult": "on",
                "accepts_policy": "on",
            },
        )

    weak = signup("password1234", "pw-weak")
    assert weak.status_code == 200
    assert b"too common" in weak.content or b"This password" in weak.content
    assert not User.objects.filter(email="pat@pw-weak.example.com").exists()


def test_a_password_change_refuses_a_short_password(tenant_a) -> None:
    user = make_user(tenant_a, Role.MEMBER, email="pwchange@a.example.com")
    client = tenant_client(tenant_a, user)
    response = client.post(
        "/accounts/password/change/",
        {"oldpassword": PASSWORD, "password1": "short-1", "password2": "short-1"},
    )
    assert response.status_code == 200
    with in_tenant(tenant_a):
        assert User.objects.get(pk=user.pk).check_password(PASSWORD)


# ---- MFA bypass ------------------------------------------------------------------------------


def _mfa_user(tenant, email: str) -> tuple[User, str]:
    user = make_user(tenant, Role.ADMIN, email=email)
    client = tenant_client(tenant)
    _login(client, email, PASSWORD)
    page = _open_totp_activation(client)
    secret = page.context["form"].secret
    assert client.post("/accounts/2fa/totp/activate/", {"code": totp(secret)}).status_code == 302
    with in_tenant(tenant):
        assert Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
    return user, secret


def test_after_the_password_step_no_page_opens_until_the_code(tenant_a) -> None:
    user, secret = _mfa_user(tenant_a, "mfa-bypass@a.example.com")
    later = time.time() + 120
    with time_machine.travel(later, tick=False):
        client = tenant_client(tenant_a)
        step = _login(client, user.email, PASSWORD)
        assert step["Location"] == "/accounts/2fa/authenticate/"
        anonymous = tenant_client(tenant_a)
        probes = 0
        for route in routes("tokenscope.urls_tenant"):
            if route.name in {"account_logout", "mfa_authenticate"}:
                continue
            path = _any_path(route)
            got = client.get(path)
            expected = anonymous.get(path)
            probes += 1
            if got.status_code == 200:  # only what an anonymous visitor may open, opens
                assert expected.status_code == 200, path
            assert user.email.encode() not in got.content, path
        api = client.get("/api/v1/projects/")
        assert api.status_code in (401, 403)
        assert not _signed_in(client)
        # Visiting other pages may abandon the pending sign-in; start it again for the code.
        client = tenant_client(tenant_a)
        assert _login(client, user.email, PASSWORD)["Location"] == "/accounts/2fa/authenticate/"
        assert client.post("/accounts/2fa/authenticate/", {"code": "000000"}).status_code == 200
        assert not _signed_in(client)
        code = totp(secret, later)
        assert client.post("/accounts/2fa/authenticate/", {"code": code}).status_code == 302
        assert _signed_in(client)
        print(f"\n[mfa] {probes} pages probed between the password and the code")

        # The same code again (same 30 s window, another client): refused.
        replay = tenant_client(tenant_a)
        _login(replay, user.email, PASSWORD)
        again = replay.post("/accounts/2fa/authenticate/", {"code": code})
        assert again.status_code == 200
        assert not _signed_in(replay)


# ---- privilege escalation --------------------------------------------------------------------


@pytest.fixture
def a_objects(tenant_a, tenant_b, django_capture_on_commit_callbacks):
    """Objects in A (made with the isolation suite's builder) to aim every route at."""
    return tenant_b_objects(tenant_b, tenant_a, django_capture_on_commit_callbacks)


def _real_paths(route: Route, objects: Any) -> list[str]:
    from tests.test_isolation_suite import filler

    values = {}
    for param in route.params:
        source = filler(route, param)
        values[param] = (
            GUESSES[source.removeprefix("guess:")][0]
            if source.startswith("guess:")
            else objects.values[source][0]
        )
    return [route.template.format(**values)]


def test_a_member_cannot_make_themselves_admin_through_any_endpoint(tenant_a, a_objects) -> None:
    member = make_user(tenant_a, Role.MEMBER, email="climber@a.example.com")
    with in_tenant(tenant_a):
        _, token = api_token_create(owner_of(tenant_a), user=member, scope="write")
    session = tenant_client(tenant_a, member)
    bearer = Client(HTTP_HOST=tenant_host(tenant_a), HTTP_AUTHORIZATION=f"Bearer {token}")
    body = {"role": Role.OWNER, "user": str(member.pk), "user_id": str(member.pk)}
    probes = 0
    for route in routes("tokenscope.urls_tenant"):
        if route.name in {"account_logout", "team_member_role"} or route.template.startswith(
            "/accounts/"
        ):
            continue
        for path in _real_paths(route, a_objects):
            for client in (session, bearer):
                client.post(path, body)
                probes += 1
                if route.template.startswith("/api/"):
                    client.patch(path, body, content_type="application/json")
                    client.put(path, body, content_type="application/json")
                    probes += 2
    for role in (Role.ADMIN, Role.OWNER):
        refused = session.post(f"/team/{member.pk}/role/", {"role": role})
        probes += 1
        assert refused.status_code == 403
    with in_tenant(tenant_a):
        assert User.objects.get(pk=member.pk).role == Role.MEMBER
    print(f"\n[roles] {probes} escalation attempts by a member, role unchanged")


def test_an_admin_cannot_make_anyone_an_owner(tenant_a) -> None:
    admin = make_user(tenant_a, Role.ADMIN)
    member = make_user(tenant_a, Role.MEMBER)
    client = tenant_client(tenant_a, admin)
    for target in (admin, member):
        response = client.post(f"/team/{target.pk}/role/", {"role": Role.OWNER})
        assert response.status_code in (200, 302, 403)
    invite = client.post("/team/invite/", {"email": "new-owner@a.example.com", "role": "owner"})
    assert invite.status_code in (200, 302, 403)
    with in_tenant(tenant_a):
        assert User.objects.get(pk=admin.pk).role == Role.ADMIN
        assert User.objects.get(pk=member.pk).role == Role.MEMBER
        from accounts.models import Invitation

        assert not Invitation.objects.filter(role=Role.OWNER).exists()


# Viewer POSTs that change only the viewer's own account, not the workspace.
VIEWER_MAY_POST = {
    "privacy_account_delete",  # erasing one's own account (asks for the password)
    "privacy_my_data",  # downloading one's own data
    "usage_export",  # a viewer may download usage (a read; the download itself is audited)
    "audit_export",
}


def test_a_viewer_changes_nothing_through_any_post(tenant_a, a_objects) -> None:
    viewer = make_user(tenant_a, Role.VIEWER, email="viewer-posts@a.example.com")
    client = tenant_client(tenant_a, viewer)
    body = {
        "name": "changed by a viewer",
        "role": Role.OWNER,
        "key": "sk-ant-api03-viewer",
        "amount_usd": "1",
        "email": "x@example.com",
    }
    selected = [
        route
        for route in routes("tokenscope.urls_tenant")
        if not route.template.startswith("/accounts/") and route.name not in VIEWER_MAY_POST
    ]
    for route in selected:  # reading first seeds settings rows made lazily on first view
        for path in _real_paths(route, a_objects):
            client.get(path)
    before = dump(tenant_a)
    probes, failures = 0, []
    for route in selected:
        for path in _real_paths(route, a_objects):
            for method in ("post", "put", "patch", "delete"):
                if method != "post" and not route.template.startswith("/api/"):
                    continue
                response = getattr(client, method)(path, body)
                probes += 1
                if response.status_code == 200 and client.get(path).status_code == 200:
                    continue  # a page that ignores POST and renders itself; the dump decides
                if response.status_code not in (403, 404, 405):
                    failures.append(f"{method.upper()} {path}: {response.status_code}")
    after = dump(tenant_a)
    changed = {table for table in before if before[table] != after.get(table)}
    print(f"\n[roles] {probes} viewer writes, all refused")
    assert not failures, "\n".join(failures)
    assert not changed, changed
