import json
import re
from datetime import timedelta

import pytest
import time_machine
from django.apps import apps
from django.contrib.sessions.models import Session
from django.core import mail
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_exists

from accounts.models import Role, User
from audit.models import AuditEvent
from audit.services import audit_event_record
from conftest import PASSWORD, in_tenant, make_user, owner_of, tenant_client
from privacy.deletion import deletions_run
from privacy.models import DataExport, ScheduledDeletion, TenantTombstone
from privacy.registry import LEGAL_HOLD, PERSONAL_DATA
from privacy.services import data_export_create
from tenants.models import Domain, Tenant


def _delete_via_page(tenant, owner, capture, **overrides):
    client = tenant_client(tenant, owner)
    data = {"password": PASSWORD, "confirm_slug": tenant.slug, **overrides}
    with capture(execute=True):
        return client.post("/settings/delete/", data)


def _cancel_link():
    body = mail.outbox[-1].body
    return re.search(r"http://localhost(/privacy/deletion/cancel/\S+)", body).group(1)


@pytest.mark.django_db
def test_deletion_needs_the_password_and_the_typed_slug(
    fresh_tenant, django_capture_on_commit_callbacks
):
    owner = owner_of(fresh_tenant)

    wrong_password = _delete_via_page(
        fresh_tenant, owner, django_capture_on_commit_callbacks, password="nope-nope-nope"
    )
    wrong_slug = _delete_via_page(
        fresh_tenant, owner, django_capture_on_commit_callbacks, confirm_slug="tenant-a"
    )

    assert "password" in wrong_password.context["form"].errors
    assert "confirm_slug" in wrong_slug.context["form"].errors
    fresh_tenant.refresh_from_db()
    assert fresh_tenant.status == Tenant.Status.ACTIVE
    assert not ScheduledDeletion.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.ADMIN, Role.MEMBER, Role.VIEWER])
def test_only_owners_may_open_the_deletion_page(tenant_a, role):
    response = tenant_client(tenant_a, make_user(tenant_a, role)).get("/settings/delete/")

    assert response.status_code == 403


@pytest.mark.django_db
def test_the_deletion_page_of_another_tenant_is_not_reachable(tenant_a, tenant_b):
    client = tenant_client(tenant_a, owner_of(tenant_a))

    response = client.get("/settings/delete/", HTTP_HOST="tenant-b.localhost")

    assert response.status_code in (302, 403, 404)
    tenant_b.refresh_from_db()
    assert tenant_b.status == Tenant.Status.ACTIVE


@pytest.mark.django_db
def test_a_deletion_request_suspends_the_tenant_revokes_sessions_and_emails_owners(
    fresh_tenant, django_capture_on_commit_callbacks
):
    owner = owner_of(fresh_tenant)
    member = make_user(fresh_tenant, Role.MEMBER)
    member_client = tenant_client(fresh_tenant, member)
    assert member_client.get("/").status_code == 200

    response = _delete_via_page(fresh_tenant, owner, django_capture_on_commit_callbacks)

    assert response.status_code == 200
    fresh_tenant.refresh_from_db()
    assert fresh_tenant.status == Tenant.Status.DELETING
    with in_tenant(fresh_tenant):
        assert Session.objects.count() == 0
    assert member_client.get("/").status_code == 403  # the tenant host refuses everyone now
    deletion = ScheduledDeletion.objects.get(tenant=fresh_tenant)
    assert deletion.due_at - deletion.requested_at == timedelta(days=14)
    assert deletion.subscription_cancel.startswith("canceled")
    assert [m.to for m in mail.outbox] == [[owner.email]]
    assert "will be deleted" in mail.outbox[0].subject


@pytest.mark.django_db
def test_an_owner_can_cancel_during_the_grace_period(
    fresh_tenant, public_client, django_capture_on_commit_callbacks
):
    owner = owner_of(fresh_tenant)
    _delete_via_page(fresh_tenant, owner, django_capture_on_commit_callbacks)
    link = _cancel_link()

    refused = public_client.post(link, {"email": owner.email, "password": "wrong-password-1"})
    assert refused.status_code == 200
    assert refused.context["form"].non_field_errors()

    with time_machine.travel(timezone.now() + timedelta(days=13)):
        response = public_client.post(link, {"email": owner.email, "password": PASSWORD})
        assert response.status_code == 200
        assert deletions_run() == 0

    fresh_tenant.refresh_from_db()
    assert fresh_tenant.status == Tenant.Status.ACTIVE
    assert ScheduledDeletion.objects.get().status == ScheduledDeletion.Status.CANCELLED
    assert public_client.get(link).status_code == 404


@pytest.mark.django_db
def test_the_cancel_link_is_dead_after_the_grace_period(
    fresh_tenant, public_client, django_capture_on_commit_callbacks
):
    _delete_via_page(fresh_tenant, owner_of(fresh_tenant), django_capture_on_commit_callbacks)
    link = _cancel_link()

    with time_machine.travel(timezone.now() + timedelta(days=14, minutes=1)):
        assert public_client.get(link).status_code == 404


def _model(label):
    try:
        return apps.get_model(label)
    except LookupError:
        return None


def _personal_values(tenant, users):
    values = {tenant.name}
    for user in users:
        values |= {user.email, user.name} - {""}
    return values


def _registered_rows_containing(values):
    """Every registered personal field, in the public schema, that still holds one of `values`."""
    found = []
    for label, fields in PERSONAL_DATA.items():
        if label in LEGAL_HOLD:
            continue
        try:
            model = apps.get_model(label)
        except LookupError:
            continue
        if model._meta.db_table not in connection.introspection.table_names():
            continue  # tenant-schema models: their schema is checked separately
        for row in model._default_manager.all().values(*fields):
            text = json.dumps(row, default=str)
            found += [f"{label}: {value}" for value in values if value in text]
    return found


@pytest.mark.django_db
def test_30_days_after_a_deletion_request_nothing_personal_about_the_tenant_remains(
    fresh_tenant, django_capture_on_commit_callbacks
):
    owner = owner_of(fresh_tenant)
    member = make_user(fresh_tenant, Role.MEMBER, email="member@priv-person.example.com")
    with in_tenant(fresh_tenant):
        owner.name = "Olive Owner"
        owner.save()
        audit_event_record(member, action="thing.done", object_type="thing", object_id=1)
    data_export_create(fresh_tenant, user_id=member.pk)
    billing_account = _model("billing.BillingAccount")
    if billing_account is not None:
        billing_account.objects.create(
            tenant=fresh_tenant,
            billing_email="billing@priv-person.example.com",
            billing_name="Olive",
        )
    values = _personal_values(fresh_tenant, [owner, member]) | {"billing@priv-person.example.com"}
    assert _registered_rows_containing(values)  # the check sees the data while it exists
    schema = fresh_tenant.schema_name
    short_id = fresh_tenant.short_id
    requested = timezone.now()

    with time_machine.travel(requested, tick=False):
        _delete_via_page(fresh_tenant, owner, django_capture_on_commit_callbacks)
    with time_machine.travel(requested + timedelta(days=7), tick=False):
        assert deletions_run() == 0  # still in the grace period
    with time_machine.travel(requested + timedelta(days=15), tick=False):
        assert deletions_run() == 1
        assert deletions_run() == 0  # idempotent

    with time_machine.travel(requested + timedelta(days=30), tick=False):
        assert not schema_exists(schema)
        assert not Tenant.objects.filter(short_id=short_id).exists()
        assert not Domain.objects.filter(domain__startswith=f"{fresh_tenant.slug}.").exists()
        assert not DataExport.objects.filter(subject_user_id=member.pk).exists()
        if billing_account is not None:
            assert not billing_account.objects.filter(tenant_id=fresh_tenant.pk).exists()
        assert _registered_rows_containing(values) == []
        tombstone = TenantTombstone.objects.get(tenant_short_id=short_id)
        assert tombstone.purged_at <= requested + timedelta(days=30)
        proof = json.dumps(
            {f.name: getattr(tombstone, f.name) for f in TenantTombstone._meta.fields}, default=str
        )
        assert not any(value in proof for value in values)
        assert tombstone.deleted["tenant_row"] == 1
        assert ScheduledDeletion.objects.get(tenant_short_id=short_id).status == "completed"


@pytest.mark.django_db
def test_a_member_can_delete_their_own_account(tenant_a):
    member = make_user(tenant_a, Role.MEMBER, email="leaving@example.com")
    with in_tenant(tenant_a):
        audit_event_record(member, action="thing.done", object_type="thing", object_id=1)
    client = tenant_client(tenant_a, member)

    refused = client.post("/settings/account/delete/", {"password": "wrong", "confirm": "on"})
    assert "password" in refused.context["form"].errors

    response = client.post("/settings/account/delete/", {"password": PASSWORD, "confirm": "on"})

    assert response.status_code == 200
    with in_tenant(tenant_a):
        gone = User.objects.get(pk=member.pk)
        assert gone.email.endswith("@erased.invalid")
        assert not gone.is_active
        assert not AuditEvent.objects.filter(actor_email="leaving@example.com").exists()
    assert client.get("/").status_code == 302  # signed out


@pytest.mark.django_db
def test_the_last_owner_cannot_delete_their_own_account(fresh_tenant):
    owner = owner_of(fresh_tenant)
    client = tenant_client(fresh_tenant, owner)

    response = client.post("/settings/account/delete/", {"password": PASSWORD, "confirm": "on"})

    assert "last owner" in str(response.context["form"].errors)
    with in_tenant(fresh_tenant):
        assert User.objects.get(pk=owner.pk).is_active
