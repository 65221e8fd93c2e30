import base64
import hashlib
import hmac
import struct
import time

import pytest
import time_machine
from allauth.mfa.models import Authenticator

from conftest import PASSWORD, in_tenant, make_user, tenant_client
from tenants.models import Tenant


def totp(secret: str, at: float | None = None) -> str:
    """RFC 6238 TOTP (SHA-1, 30 s, 6 digits), written out independently of allauth."""
    counter = int((at if at is not None else time.time()) // 30)
    digest = hmac.new(
        base64.b32decode(secret, casefold=True), struct.pack(">Q", counter), hashlib.sha1
    ).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def _sign_in(client, email):
    return client.post("/accounts/login/", {"login": email, "password": PASSWORD})


def _open_totp_activation(client):
    """Activation asks for the password again first (re-authentication for a sensitive change)."""
    asked = client.get("/accounts/2fa/totp/activate/")
    assert asked.status_code == 302
    assert asked["Location"].startswith("/accounts/reauthenticate/")
    assert client.post(asked["Location"], {"password": PASSWORD}).status_code == 302
    page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 200
    return page


@pytest.mark.django_db
def test_a_user_activates_totp_and_then_needs_a_code_to_sign_in(tenant_a):
    user = make_user(tenant_a, "member", email="mfa-user@a.example.com")
    client = tenant_client(tenant_a)
    assert _sign_in(client, user.email).status_code == 302

    page = _open_totp_activation(client)
    secret = page.context["form"].secret
    wrong = client.post("/accounts/2fa/totp/activate/", {"code": "000000"})
    assert wrong.status_code == 200
    activated = client.post("/accounts/2fa/totp/activate/", {"code": totp(secret)})
    assert activated.status_code == 302
    with in_tenant(tenant_a):
        assert Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()

    with time_machine.travel(time.time() + 90, tick=False):
        fresh = tenant_client(tenant_a)
        step_one = _sign_in(fresh, user.email)
        assert step_one.status_code == 302
        assert step_one["Location"] == "/accounts/2fa/authenticate/"
        assert fresh.get("/").status_code == 302  # not signed in yet

        refused = fresh.post("/accounts/2fa/authenticate/", {"code": "123456"})
        assert refused.status_code == 200
        assert fresh.get("/").status_code == 302

        accepted = fresh.post("/accounts/2fa/authenticate/", {"code": totp(secret)})
        assert accepted.status_code == 302
        assert fresh.get("/").status_code == 200


@pytest.mark.django_db
def test_a_recovery_code_works_once(tenant_a):
    user = make_user(tenant_a, "member", email="recovery@a.example.com")
    client = tenant_client(tenant_a)
    _sign_in(client, user.email)
    page = _open_totp_activation(client)
    client.post("/accounts/2fa/totp/activate/", {"code": totp(page.context["form"].secret)})
    with in_tenant(tenant_a):
        codes = (
            Authenticator.objects.get(user=user, type=Authenticator.Type.RECOVERY_CODES)
            .wrap()
            .get_unused_codes()
        )

    first = tenant_client(tenant_a)
    _sign_in(first, user.email)
    assert first.post("/accounts/2fa/authenticate/", {"code": codes[0]}).status_code == 302
    assert first.get("/").status_code == 200

    second = tenant_client(tenant_a)
    _sign_in(second, user.email)
    assert second.post("/accounts/2fa/authenticate/", {"code": codes[0]}).status_code == 200
    assert second.get("/").status_code == 302


@pytest.mark.django_db
def test_a_tenant_can_require_mfa_for_owners_and_admins(tenant_a):
    Tenant.objects.filter(pk=tenant_a.pk).update(require_mfa_for_admins=True)
    admin = make_user(tenant_a, "admin")
    member = make_user(tenant_a, "member")

    admin_page = tenant_client(tenant_a, admin).get("/team/")
    member_page = tenant_client(tenant_a, member).get("/team/")

    assert admin_page.status_code == 302
    assert admin_page["Location"] == "/accounts/2fa/totp/activate/"
    assert member_page.status_code == 200


@pytest.mark.django_db
def test_operators_sign_in_through_allauth_and_need_totp_for_the_admin(public_client, settings):
    from allauth.mfa.totp.internal.auth import TOTP
    from django_tenants.utils import schema_context

    from accounts.models import User

    settings.OPERATOR_MFA_REQUIRED = True
    with schema_context("public"):
        operator = User.objects.create_superuser("ops@aitokenscope.example.com", PASSWORD)

    anonymous = public_client.get("/admin/login/")
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/accounts/login/")

    with schema_context("public"):
        public_client.force_login(operator)
    without_totp = public_client.get("/admin/")
    assert without_totp.status_code == 302
    assert without_totp["Location"] == "/accounts/2fa/totp/activate/"

    with schema_context("public"):
        TOTP.activate(operator, "JBSWY3DPEHPK3PXP")
    assert public_client.get("/admin/").status_code == 200
