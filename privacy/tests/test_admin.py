from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from privacy.models import PolicyVersion, PrivacyRequest, PrivacyRequestEvent


def _open_request(days_since_verified: int, email: str = "q@example.com") -> PrivacyRequest:
    verified = timezone.now() - timedelta(days=days_since_verified)
    return PrivacyRequest.objects.create(
        email=email,
        name="Queue Person",
        type=PrivacyRequest.Type.CORRECTION,
        status=PrivacyRequest.Status.OPEN,
        verify_expires_at=verified,
        verified_at=verified,
        due_at=verified + timedelta(days=30),
    )


@pytest.mark.django_db
def test_operators_publish_a_policy_in_the_admin_and_every_tenant_is_emailed(
    admin_client, tenants_ab, django_capture_on_commit_callbacks, eager_celery
):
    effective = timezone.now() + timedelta(days=15)
    data = {
        "version": "2027-03-01",
        "effective_at_0": effective.strftime("%Y-%m-%d"),
        "effective_at_1": effective.strftime("%H:%M:%S"),
        "summary": "Clearer retention text.",
        "text": "Privacy Policy\n\n1. Data We Collect\n\nLess.\n",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/admin/privacy/policyversion/add/", data)

    assert response.status_code == 302, response.content[:2000]
    assert PolicyVersion.objects.filter(version="2027-03-01").exists()
    recipients = {address for message in mail.outbox for address in message.to}
    assert {"owner@tenant-a.example.com", "owner@tenant-b.example.com"} <= recipients


@pytest.mark.django_db
def test_the_admin_refuses_a_policy_effective_too_soon(admin_client):
    soon = timezone.now() + timedelta(days=3)
    data = {
        "version": "2027-03-02",
        "effective_at_0": soon.strftime("%Y-%m-%d"),
        "effective_at_1": soon.strftime("%H:%M:%S"),
        "summary": "",
        "text": "Privacy Policy\n",
    }

    response = admin_client.post("/admin/privacy/policyversion/add/", data)

    assert response.status_code == 200
    assert b"at least 14 days" in response.content
    assert not PolicyVersion.objects.filter(version="2027-03-02").exists()


@pytest.mark.django_db
def test_the_queue_highlights_overdue_requests(admin_client):
    _open_request(31, "late@example.com")
    _open_request(2, "fresh@example.com")

    response = admin_client.get("/admin/privacy/privacyrequest/")

    assert response.status_code == 200
    assert response.content.count(b"OVERDUE") == 1


@pytest.mark.django_db
def test_notes_are_logged_as_events_and_requests_cannot_be_deleted(admin_client):
    req = _open_request(1)
    url = f"/admin/privacy/privacyrequest/{req.pk}/change/"

    management = {
        "events-TOTAL_FORMS": "0",
        "events-INITIAL_FORMS": "0",
        "events-MIN_NUM_FORMS": "0",
        "events-MAX_NUM_FORMS": "1000",
    }
    response = admin_client.post(url, {"notes": "Called the requester.", **management})

    assert response.status_code == 302
    event = PrivacyRequestEvent.objects.get(request=req, kind="note")
    assert event.note == "Called the requester."
    assert admin_client.post(f"/admin/privacy/privacyrequest/{req.pk}/delete/").status_code == 403


@pytest.mark.django_db
def test_rejecting_needs_reasons_and_emails_the_requester(admin_client):
    req = _open_request(1)
    changelist = "/admin/privacy/privacyrequest/"

    admin_client.post(changelist, {"action": "reject", "_selected_action": [req.pk]})
    req.refresh_from_db()
    assert req.status == PrivacyRequest.Status.OPEN

    PrivacyRequest.objects.filter(pk=req.pk).update(notes="Not our customer's data.")
    admin_client.post(changelist, {"action": "reject", "_selected_action": [req.pk]})
    req.refresh_from_db()
    assert req.status == PrivacyRequest.Status.REJECTED
    assert req.denial_basis == "Not our customer's data."
    assert req.events.filter(kind="rejected").exists()
