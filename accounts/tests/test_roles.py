import pytest
from django.core import mail
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.permissions import AllowAny

from accounts.models import Invitation, Role, User
from audit.models import AuditEvent
from conftest import PASSWORD, in_tenant, make_user, owner_of, tenant_client
from tenants.models import Tenant


def _tenant_views():
    """Every view of the tenant URLconf that is ours (not allauth's)."""
    found = []

    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if pattern.app_name or "allauth" in str(pattern.urlconf_name):
                    continue
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                found.append((prefix + str(pattern.pattern), pattern.callback))

    walk(get_resolver("tokenscope.urls_tenant").url_patterns)
    return found


# Views anyone may open: the public policy (and its history) and an invitation link (which
# carries its own token).
OPEN_VIEWS = {"privacy/", "privacy/versions/<str:version>/", "team/join/<str:token>/"}


def _guarded(callback) -> bool:
    """A page names its least role; an API view (DRF) refuses anonymous callers."""
    if hasattr(callback, "minimum_role"):
        return True
    view_class = getattr(callback, "cls", None)
    permissions = getattr(view_class, "permission_classes", None) or []
    return bool(permissions) and AllowAny not in permissions


def test_every_tenant_view_declares_the_least_role_that_may_use_it():
    undeclared = [
        route
        for route, callback in _tenant_views()
        if route not in OPEN_VIEWS and not _guarded(callback)
    ]
    assert undeclared == []


@pytest.mark.django_db
def test_a_viewer_cannot_open_settings_or_invite(tenant_a):
    viewer = make_user(tenant_a, Role.VIEWER)
    client = tenant_client(tenant_a, viewer)

    assert client.get("/settings/").status_code == 403
    assert (
        client.post("/team/invite/", {"email": "x@example.com", "role": "member"}).status_code
        == 403
    )
    with in_tenant(tenant_a):
        assert not Invitation.objects.filter(email="x@example.com").exists()


@pytest.mark.django_db
def test_a_member_cannot_change_roles(tenant_a):
    member = make_user(tenant_a, Role.MEMBER)
    other = make_user(tenant_a, Role.VIEWER)
    client = tenant_client(tenant_a, member)

    response = client.post(f"/team/{other.pk}/role/", {"role": "admin"})

    assert response.status_code == 403
    with in_tenant(tenant_a):
        assert User.objects.get(pk=other.pk).role == Role.VIEWER


@pytest.mark.django_db
def test_an_admin_changes_a_role_and_it_is_audited(tenant_a):
    admin = make_user(tenant_a, Role.ADMIN)
    other = make_user(tenant_a, Role.VIEWER)
    client = tenant_client(tenant_a, admin)

    client.post(f"/team/{other.pk}/role/", {"role": "member"})

    with in_tenant(tenant_a):
        assert User.objects.get(pk=other.pk).role == Role.MEMBER
        event = AuditEvent.objects.get(action="member.role_changed", object_id=str(other.pk))
        assert event.actor_id == admin.pk
        assert event.changes == {"role": ["viewer", "member"]}


@pytest.mark.django_db
def test_an_admin_cannot_make_an_owner(tenant_a):
    admin = make_user(tenant_a, Role.ADMIN)
    other = make_user(tenant_a, Role.MEMBER)
    client = tenant_client(tenant_a, admin)

    client.post(f"/team/{other.pk}/role/", {"role": "owner"})

    with in_tenant(tenant_a):
        assert User.objects.get(pk=other.pk).role == Role.MEMBER


@pytest.mark.django_db
def test_the_last_owner_cannot_be_demoted(tenant_a):
    owner = owner_of(tenant_a)
    client = tenant_client(tenant_a, owner)

    client.post(f"/team/{owner.pk}/role/", {"role": "admin"})

    with in_tenant(tenant_a):
        assert User.objects.get(pk=owner.pk).role == Role.OWNER


@pytest.mark.django_db
def test_an_invited_teammate_joins_with_the_invited_role(
    tenant_a, django_capture_on_commit_callbacks
):
    client = tenant_client(tenant_a, owner_of(tenant_a))

    with django_capture_on_commit_callbacks(execute=True):
        client.post("/team/invite/", {"email": "new.hire@example.com", "role": "viewer"})

    assert len(mail.outbox) == 1
    link = next(line for line in mail.outbox[0].body.splitlines() if "/team/join/" in line)
    path = link.split("localhost", 1)[1]
    joiner = tenant_client(tenant_a)
    response = joiner.post(path, {"name": "New Hire", "password": PASSWORD})
    assert response.status_code == 302
    with in_tenant(tenant_a):
        user = User.objects.get(email="new.hire@example.com")
        assert user.role == Role.VIEWER
        assert Invitation.objects.get(email="new.hire@example.com").accepted_at is not None
    # The link works once.
    assert joiner.get(path).status_code == 404
    assert (
        joiner.post(
            "/accounts/login/", {"login": "new.hire@example.com", "password": PASSWORD}
        ).status_code
        == 302
    )


@pytest.mark.django_db
def test_a_removed_member_loses_access_at_once(tenant_a):
    member = make_user(tenant_a, Role.MEMBER)
    member_client = tenant_client(tenant_a, member)
    assert member_client.get("/").status_code == 200
    owner_client = tenant_client(tenant_a, owner_of(tenant_a))

    owner_client.post(f"/team/{member.pk}/remove/")

    assert member_client.get("/").status_code == 302


@pytest.mark.django_db
def test_settings_changes_are_recorded_with_actor_and_time(tenant_a):
    admin = make_user(tenant_a, Role.ADMIN)
    client = tenant_client(tenant_a, admin)

    response = client.post(
        "/settings/",
        {"time_zone": "Europe/Berlin", "week_starts_on": "sunday", "privacy_mode": "on"},
    )

    assert response.status_code == 302
    tenant = Tenant.objects.get(pk=tenant_a.pk)
    assert (tenant.time_zone, tenant.week_starts_on, tenant.privacy_mode) == (
        "Europe/Berlin",
        "sunday",
        True,
    )
    with in_tenant(tenant_a):
        event = AuditEvent.objects.get(action="tenant.settings_changed")
        assert event.actor_id == admin.pk
        assert event.created_at is not None
        assert event.changes["privacy_mode"] == [False, True]
        assert AuditEvent.objects.filter(action="tenant.privacy_mode_on").exists()


@pytest.mark.django_db
def test_an_invalid_time_zone_is_refused(tenant_a):
    client = tenant_client(tenant_a, owner_of(tenant_a))

    response = client.post("/settings/", {"time_zone": "Mars/Olympus", "week_starts_on": "monday"})

    assert response.status_code == 200
    assert Tenant.objects.get(pk=tenant_a.pk).time_zone == "UTC"
