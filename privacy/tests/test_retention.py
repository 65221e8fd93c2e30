from datetime import timedelta

import pytest
import time_machine
from django.apps import apps
from django.utils import timezone

from accounts.models import Role
from audit.models import AuditEvent
from conftest import in_tenant, make_user, owner_of, tenant_client
from privacy.models import DataExport
from privacy.retention import (
    delete_before,
    retention_days_effective,
    retention_preview,
    retention_purge,
)
from privacy.services import data_export_create
from privacy.tasks import purge_countdown, retention_purge_schedule
from tenants.models import Plan

NOW = timezone.now().replace(microsecond=0)


def _event_aged(days: float, action: str = "old.thing") -> int:
    event = AuditEvent.objects.create(action=action, object_type="thing")
    AuditEvent.objects.filter(pk=event.pk).update(created_at=NOW - timedelta(days=days))
    return event.pk


def _set_plan(tenant, slug):
    tenant.plan = Plan.objects.get(slug=slug)
    tenant.save(update_fields=["plan"])


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("plan", "days"), [("free", 30), ("startup", 90), ("team", 365), ("business", 730)]
)
def test_the_nightly_purge_keeps_exactly_the_plans_period(tenant_a, plan, days):
    _set_plan(tenant_a, plan)
    with in_tenant(tenant_a):
        AuditEvent.objects.all().delete()
        expired = _event_aged(days + 0.01)
        kept = _event_aged(days - 0.01)

    with time_machine.travel(NOW, tick=False):
        deleted = retention_purge(tenant_a)

    assert deleted["audit.AuditEvent"] == 1
    with in_tenant(tenant_a):
        assert not AuditEvent.objects.filter(pk=expired).exists()
        assert AuditEvent.objects.filter(pk=kept).exists()


@pytest.mark.django_db
def test_a_shorter_owner_period_is_honoured(tenant_a):
    _set_plan(tenant_a, "team")
    tenant_a.retention_days_override = 7
    tenant_a.save(update_fields=["retention_days_override"])
    with in_tenant(tenant_a):
        AuditEvent.objects.all().delete()
        expired = _event_aged(8)
        kept = _event_aged(6)

    with time_machine.travel(NOW, tick=False):
        assert retention_preview(tenant_a)["audit.AuditEvent"] == 1
        retention_purge(tenant_a)

    with in_tenant(tenant_a):
        assert not AuditEvent.objects.filter(pk=expired).exists()
        assert AuditEvent.objects.filter(pk=kept).exists()


@pytest.mark.django_db
def test_the_nightly_job_purges_every_tenant_and_leaves_others_data_alone(
    tenant_a, tenant_b, eager_celery
):
    _set_plan(tenant_b, "business")
    with in_tenant(tenant_a):
        a_old = _event_aged(31)
    with in_tenant(tenant_b):
        b_old = _event_aged(31)

    with time_machine.travel(NOW, tick=False):
        assert retention_purge_schedule() >= 2

    with in_tenant(tenant_a):
        assert not AuditEvent.objects.filter(pk=a_old).exists()
    with in_tenant(tenant_b):
        assert AuditEvent.objects.filter(pk=b_old).exists()


@pytest.mark.django_db
def test_purges_run_in_small_batches_until_done(tenant_a):
    with in_tenant(tenant_a):
        AuditEvent.objects.all().delete()
        for _ in range(5):
            _event_aged(400)
        deleted = delete_before(AuditEvent, "created_at", NOW - timedelta(days=30), batch=2)
        assert deleted == 5
        assert AuditEvent.objects.count() == 0


def test_each_tenant_gets_a_stable_jitter_within_two_hours():
    from tenants.models import Tenant

    a, b = Tenant(short_id="aaaaaaaaaa"), Tenant(short_id="bbbbbbbbbb")

    assert purge_countdown(a) == purge_countdown(a)
    assert purge_countdown(a) != purge_countdown(b)
    assert 0 <= purge_countdown(a) < 2 * 60 * 60


@pytest.mark.django_db
def test_a_billing_notice_floor_delays_a_shorter_retention(tenant_a):
    billing_account = apps.get_model("billing", "BillingAccount")
    billing_account.objects.create(
        tenant=tenant_a, retention_floor_days=90, retention_floor_until=NOW + timedelta(days=7)
    )
    tenant_a.refresh_from_db()

    assert retention_days_effective(tenant_a, now=NOW) == 90
    assert retention_days_effective(tenant_a, now=NOW + timedelta(days=8)) == 30


@pytest.mark.django_db
def test_finished_exports_expire_after_7_days(tenant_a, eager_celery):
    member = make_user(tenant_a, Role.MEMBER)
    export, _token = data_export_create(tenant_a, user_id=member.pk)

    with time_machine.travel(NOW + timedelta(days=6), tick=False):
        retention_purge_schedule()
        assert DataExport.objects.filter(pk=export.pk).exists()
    with time_machine.travel(NOW + timedelta(days=7, hours=1), tick=False):
        retention_purge_schedule()
        assert not DataExport.objects.filter(pk=export.pk).exists()


@pytest.mark.django_db
def test_an_owner_sets_a_shorter_retention_and_sees_the_preview(tenant_a):
    with in_tenant(tenant_a):
        _event_aged(20)
    client = tenant_client(tenant_a, owner_of(tenant_a))

    page = client.get("/settings/retention/")
    assert page.status_code == 200
    assert b"audit.AuditEvent" in page.content

    response = client.post("/settings/retention/", {"retention_days": "10"})
    assert response.status_code == 302
    tenant_a.refresh_from_db()
    assert tenant_a.retention_days == 10
    with in_tenant(tenant_a):
        event = AuditEvent.objects.get(action="tenant.retention_changed")
        assert event.changes == {"retention_days_override": [None, 10]}
    assert retention_preview(tenant_a)["audit.AuditEvent"] >= 1


@pytest.mark.django_db
def test_retention_can_never_exceed_the_plan(tenant_a):
    client = tenant_client(tenant_a, owner_of(tenant_a))

    response = client.post("/settings/retention/", {"retention_days": "31"})

    assert response.status_code == 200
    assert "30 days" in str(response.context["form"].errors)
    tenant_a.refresh_from_db()
    assert tenant_a.retention_days_override is None


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.ADMIN, Role.MEMBER, Role.VIEWER])
def test_only_owners_may_change_retention(tenant_a, role):
    client = tenant_client(tenant_a, make_user(tenant_a, role))

    assert client.get("/settings/retention/").status_code == 403


@pytest.mark.django_db
def test_another_tenants_retention_page_is_not_reachable(tenant_a, tenant_b):
    client = tenant_client(tenant_a, owner_of(tenant_a))

    response = client.post(
        "/settings/retention/", {"retention_days": "3"}, HTTP_HOST="tenant-b.localhost"
    )

    assert response.status_code in (302, 403, 404)
    tenant_b.refresh_from_db()
    assert tenant_b.retention_days_override is None
