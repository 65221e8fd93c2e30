import io
import json
import re
import zipfile
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.core.cache import cache
from django.utils import timezone

from accounts.models import Role, User
from audit.models import AuditEvent
from audit.services import audit_event_record
from conftest import in_tenant, make_user
from privacy.models import DataExport, PrivacyRequest, PrivacyRequestEvent
from privacy.selectors import processing_restricted
from privacy.services import (
    privacy_request_approve,
    privacy_request_execute,
    privacy_requests_expire,
)

FORM = {
    "name": "Pat Person",
    "email": "",
    "type": "access",
    "details": "Workspace A",
    "website": "",
}


@pytest.fixture(autouse=True)
def _clear_rate_limits():
    cache.clear()


@pytest.fixture(autouse=True)
def _on_commit(django_capture_on_commit_callbacks):
    """Run on_commit side effects (emails) right away, as a real commit would."""
    global _capture
    _capture = django_capture_on_commit_callbacks


_capture = None


def _post(client, path, data=None, **extra):
    with _capture(execute=True):
        return client.post(path, data or {}, **extra)


def _submit(client, email, type_="access", ip="203.0.113.9", **extra):
    return _post(
        client,
        "/privacy/request/",
        {**FORM, "email": email, "type": type_, **extra},
        REMOTE_ADDR=ip,
    )


def _link(path_prefix):
    body = mail.outbox[-1].body
    return (
        re.search(rf"http://localhost{path_prefix}[^\s]+", body)
        .group(0)
        .replace("http://localhost", "")
    )


def _verify(client, email, type_="access"):
    with_capture = _submit(client, email, type_)
    assert with_capture.status_code == 200
    link = _link("/privacy/request/verify/")
    assert _post(client, link).status_code == 200
    return PrivacyRequest.objects.get(email=email, type=type_), link


@pytest.mark.django_db
def test_the_form_asks_for_nothing_but_its_fields_and_shows_errors(public_client):
    response = public_client.post(
        "/privacy/request/", {**FORM, "email": "not-an-email", "type": ""}
    )

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "email" in errors
    assert "type" in errors
    assert PrivacyRequest.objects.count() == 0


@pytest.mark.django_db
def test_a_request_enters_the_queue_only_after_the_single_use_link(public_client, tenants_ab):
    response = _submit(public_client, "pat@example.com")
    assert b"Check your email" in response.content
    req = PrivacyRequest.objects.get(email="pat@example.com")
    assert req.status == PrivacyRequest.Status.UNVERIFIED
    assert req.due_at is None
    link = _link("/privacy/request/verify/")

    assert public_client.get(link).status_code == 200  # a confirmation page; GET changes nothing
    req.refresh_from_db()
    assert req.status == PrivacyRequest.Status.UNVERIFIED

    assert _post(public_client, link).status_code == 200
    req.refresh_from_db()
    assert req.status == PrivacyRequest.Status.OPEN
    assert req.due_at == req.verified_at + timedelta(days=30)
    assert "We received your privacy request" in mail.outbox[-1].subject
    assert public_client.post(link).status_code == 404  # single use
    kinds = list(req.events.values_list("kind", flat=True))
    assert kinds == ["received", "verified", "acknowledged"]


@pytest.mark.django_db
def test_unverified_requests_expire_after_48_hours_without_their_personal_fields(public_client):
    _submit(public_client, "late@example.com")
    link = _link("/privacy/request/verify/")
    req = PrivacyRequest.objects.get(email="late@example.com")

    with time_machine.travel(timezone.now() + timedelta(hours=47)):
        assert privacy_requests_expire() == 0
    with time_machine.travel(timezone.now() + timedelta(hours=49)):
        assert privacy_requests_expire() == 1
        assert public_client.post(link).status_code == 404

    req.refresh_from_db()
    assert req.status == PrivacyRequest.Status.EXPIRED
    assert (req.email, req.name, req.details) == ("", "", "")


@pytest.mark.django_db
def test_the_honeypot_field_makes_a_silent_no_op(public_client):
    response = _submit(public_client, "bot@example.com", website="http://spam.example")

    assert response.status_code == 200
    assert PrivacyRequest.objects.count() == 0
    assert mail.outbox == []


@pytest.mark.django_db
def test_requests_are_rate_limited_per_email_and_per_address(public_client):
    for _ in range(3):
        _submit(public_client, "same@example.com", ip="198.51.100.1")
    response = _submit(public_client, "same@example.com", ip="198.51.100.2")
    assert "Too many requests for this address" in str(response.context["form"].errors)

    for n in range(2):
        _submit(public_client, f"other{n}@example.com", ip="198.51.100.3")
    for n in range(3):
        _submit(public_client, f"more{n}@example.com", ip="198.51.100.3")
    response = _submit(public_client, "last@example.com", ip="198.51.100.3")
    assert "Too many requests from your network" in str(response.context["form"].errors)
    assert not PrivacyRequest.objects.filter(email="last@example.com").exists()


@pytest.mark.django_db
def test_an_approved_export_downloads_once_then_the_link_is_dead(
    public_client, tenant_a, django_capture_on_commit_callbacks
):
    person = make_user(tenant_a, Role.MEMBER, email="export-me@example.com")
    with in_tenant(tenant_a):
        audit_event_record(person, action="thing.done", object_type="thing", object_id=1)
    req, _ = _verify(public_client, "export-me@example.com")

    privacy_request_approve(req, operator="operator:1")
    privacy_request_execute(req)

    req.refresh_from_db()
    assert req.status == PrivacyRequest.Status.COMPLETED
    link = _link("/privacy/export/")
    response = public_client.post(link)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    names = set(archive.namelist())
    assert {"README.txt", "data.json", "profile.csv", "audit_events.csv"} <= names
    data = json.loads(archive.read("data.json"))
    assert data["profile"][0]["email"] == "export-me@example.com"
    assert data["audit_events"][0]["action"] == "thing.done"
    assert "password" not in archive.read("data.json").decode()
    assert "export-me@example.com" in archive.read("profile.csv").decode()

    assert public_client.post(link).status_code == 404
    assert bytes(DataExport.objects.get(request=req).content) == b""
    assert req.events.filter(kind="export_downloaded").exists()


@pytest.mark.django_db
def test_an_export_link_expires_after_7_days(public_client, tenant_a):
    make_user(tenant_a, Role.MEMBER, email="slow@example.com")
    req, _ = _verify(public_client, "slow@example.com")
    privacy_request_approve(req, operator="operator:1")
    privacy_request_execute(req)
    link = _link("/privacy/export/")

    with time_machine.travel(timezone.now() + timedelta(days=7, minutes=1)):
        assert public_client.post(link).status_code == 404


@pytest.mark.django_db
def test_an_approved_erasure_leaves_no_personal_field(public_client, tenant_a):
    person = make_user(tenant_a, Role.ADMIN, email="forget-me@example.com")
    with in_tenant(tenant_a):
        person.name = "Forget Me"
        person.save()
        audit_event_record(person, action="thing.done", object_type="thing", object_id=1)
    req, _ = _verify(public_client, "forget-me@example.com", type_="deletion")

    privacy_request_approve(req, operator="operator:1")
    privacy_request_execute(req)

    with in_tenant(tenant_a):
        erased = User.objects.get(pk=person.pk)
        assert erased.email != "forget-me@example.com"
        assert erased.name == ""
        assert not erased.is_active
        assert not erased.has_usable_password()
        events = AuditEvent.objects.filter(actor_id=person.pk)
        assert events.count() >= 1  # the record of what happened is kept
        assert not events.exclude(actor_email="").exists()
        assert not events.filter(ip_address__isnull=False).exists()
        assert not User.objects.filter(email="forget-me@example.com").exists()
        assert not AuditEvent.objects.filter(object_repr="forget-me@example.com").exists()
    req.refresh_from_db()
    assert req.status == PrivacyRequest.Status.COMPLETED


@pytest.mark.django_db
def test_an_approved_objection_sets_the_restriction_flag(public_client, tenant_a, tenant_b):
    person = make_user(tenant_a, Role.MEMBER, email="object@example.com")
    assert not processing_restricted(tenant_a, person.pk)
    req, _ = _verify(public_client, "object@example.com", type_="restriction")

    privacy_request_approve(req, operator="operator:1")
    privacy_request_execute(req)

    assert processing_restricted(tenant_a, person.pk)
    assert not processing_restricted(tenant_b, person.pk)


@pytest.mark.django_db
def test_the_event_log_is_append_only_in_the_admin(admin_client):
    from django.contrib.admin.sites import site

    inline = site._registry[PrivacyRequest].inlines[0](PrivacyRequest, site)
    request = type("R", (), {"user": None})()
    assert not inline.has_add_permission(request)
    assert not inline.has_change_permission(request)
    assert not inline.can_delete
    assert not site._registry[PrivacyRequest].has_delete_permission(request)
    assert PrivacyRequestEvent.objects.count() == 0
