from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from accounts.models import Role
from conftest import make_user, tenant_client
from privacy.forms import PolicyVersionAdminForm
from privacy.models import PolicyNotice, PolicyVersion
from privacy.selectors import policy_in_force, policy_upcoming
from privacy.services import policy_notices_send, policy_version_publish
from privacy.tasks import policy_notify_tenant
from tokenscope.lib.errors import DomainError

NEW_TEXT = "AI TokenScope\n\nPrivacy Policy\n\n1. Data We Collect\n\nLess than before.\n"


@pytest.mark.django_db
def test_the_seeded_version_is_in_force_and_shown_on_the_public_page(public_client):
    response = public_client.get("/privacy/")

    assert response.status_code == 200
    assert policy_in_force().version == "2026-05-14"
    assert b"Data We Collect" in response.content
    assert b"2026-05-14" in response.content


@pytest.mark.django_db
def test_the_policy_page_is_served_on_tenant_hosts_too(tenant_a):
    response = tenant_client(tenant_a).get("/privacy/")

    assert response.status_code == 200
    assert b"Your Rights" in response.content


@pytest.mark.django_db
def test_publishing_a_policy_effective_in_under_14_days_is_refused():
    with pytest.raises(DomainError, match="14 days"):
        policy_version_publish(
            version="2026-12-01",
            text=NEW_TEXT,
            effective_at=timezone.now() + timedelta(days=13, hours=23),
        )
    assert not PolicyVersion.objects.filter(version="2026-12-01").exists()


@pytest.mark.django_db
def test_the_admin_form_refuses_an_effective_date_under_14_days():
    form = PolicyVersionAdminForm(
        data={
            "version": "2026-12-01",
            "text": NEW_TEXT,
            "summary": "",
            "effective_at": (timezone.now() + timedelta(days=10)).strftime("%Y-%m-%d %H:%M:%S"),
        }
    )

    assert not form.is_valid()
    assert "14 days" in str(form.errors["effective_at"])


@pytest.mark.django_db
def test_the_admin_form_accepts_an_effective_date_14_days_away():
    form = PolicyVersionAdminForm(
        data={
            "version": "2026-12-20",
            "text": NEW_TEXT,
            "summary": "Shorter.",
            "effective_at": (timezone.now() + timedelta(days=15)).strftime("%Y-%m-%d %H:%M:%S"),
        }
    )

    assert form.is_valid(), form.errors


@pytest.mark.django_db
def test_a_valid_publication_emails_every_tenants_owners_and_admins_exactly_once(
    tenant_a, tenant_b, django_capture_on_commit_callbacks, eager_celery
):
    admin_a = make_user(tenant_a, Role.ADMIN)
    member_a = make_user(tenant_a, Role.MEMBER)
    viewer_b = make_user(tenant_b, Role.VIEWER)
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        policy = policy_version_publish(
            version="2027-01-01",
            text=NEW_TEXT,
            effective_at=timezone.now() + timedelta(days=14, minutes=1),
            summary="We keep less.",
        )
    # A retried task (or a second worker) sends nothing more.
    for tenant in (tenant_a, tenant_b):
        policy_notify_tenant(policy.pk, tenant.pk)
        policy_notices_send(policy, tenant)

    recipients = sorted(address for message in mail.outbox for address in message.to)
    assert "owner@tenant-a.example.com" in recipients
    assert "owner@tenant-b.example.com" in recipients
    assert admin_a.email in recipients
    assert member_a.email not in recipients
    assert viewer_b.email not in recipients
    assert len(recipients) == len(set(recipients))
    assert PolicyNotice.objects.filter(policy=policy, sent_at__isnull=False).count() == len(
        recipients
    )
    assert "We keep less." in mail.outbox[0].body


@pytest.mark.django_db
def test_the_page_announces_an_upcoming_change_then_shows_it_once_in_force(public_client):
    now = timezone.now()
    policy_version_publish(
        version="2027-02-01", text=NEW_TEXT, effective_at=now + timedelta(days=20)
    )

    response = public_client.get("/privacy/")
    assert policy_upcoming() is not None
    assert b"takes effect on" in response.content
    assert b"2027-02-01" in response.content
    assert b"Your Rights" in response.content  # still the old text

    with time_machine.travel(now + timedelta(days=21)):
        response = public_client.get("/privacy/")
        assert policy_in_force().version == "2027-02-01"
    assert b"Less than before." in response.content
    assert b"2026-05-14" in response.content  # history is kept


@pytest.mark.django_db
def test_an_old_version_stays_readable(public_client):
    response = public_client.get("/privacy/versions/2026-05-14/")

    assert response.status_code == 200
    assert b"Your Rights" in response.content
