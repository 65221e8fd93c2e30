"""Rollups: incremental maintenance equals a rebuild from raw records; repricing corrects them."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from audit.models import UsageClassRollup, UsageRecord, UsageRollup
from audit.rollups import rollup_apply, rollup_rebuild
from audit.tests.insight_factory import record, workspace, write
from conftest import in_tenant

pytestmark = pytest.mark.django_db

FIELDS = [
    "hour",
    "model",
    "project_id",
    "cost_center_id",
    "proxy_key_id",
    "key_owner_id",
    "status_code",
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cost_usd",
    "cache_read_usd",
    "cache_write_5m_usd",
]


def _snapshot() -> list[tuple]:
    return sorted(
        tuple(str(v) for v in row)
        for row in UsageRollup.objects.filter(requests__gt=0).values_list(*FIELDS)
    )


def _class_snapshot() -> list[tuple]:
    return sorted(
        tuple(str(v) for v in row)
        for row in UsageClassRollup.objects.filter(requests__gt=0).values_list(
            "hour",
            "project_id",
            "dim",
            "value",
            "requests",
            "cost_usd",
        )
    )


def test_gateway_insert_maintains_rollups_equal_to_a_rebuild(tenant_a):
    _, _, key = workspace(tenant_a)
    now = timezone.now()
    cached = {
        "input_tokens": 50,
        "output_tokens": 10,
        "cache_creation_input_tokens": 3000,
        "cache_read_input_tokens": 9000,
        "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
    }
    records = [
        record(
            key,
            at=now - timedelta(hours=h, minutes=m),
            usage=cached if m % 2 else None,
            category="coding" if m % 3 else "",
            relevance_score=0.42 if m else None,
            sensitivity="internal" if m else "",
        )
        for h in range(3)
        for m in range(5)
    ]
    records.append(record(key, at=now - timedelta(days=3), status_code=529))  # a late one
    write(tenant_a, records)
    with in_tenant(tenant_a):
        incremental, incremental_class = _snapshot(), _class_snapshot()
        assert sum(int(r[7]) for r in incremental) == len(records)
        total = sum(r.cost_usd for r in UsageRecord.objects.all())
        assert sum(Decimal(r[11]) for r in incremental) == total
        rollup_rebuild(now - timedelta(days=4), now)
        assert _snapshot() == incremental
        assert _class_snapshot() == incremental_class


def test_rollup_apply_with_minus_one_takes_records_back_out(tenant_a):
    _, _, key = workspace(tenant_a)
    records = write(tenant_a, [record(key), record(key, model="claude-haiku-4-5")])
    with in_tenant(tenant_a):
        rollup_apply(records, sign=-1)
        assert _snapshot() == []
        assert _class_snapshot() == []


def test_usage_reprice_keeps_the_earlier_figure_and_corrects_rollups(tenant_a):
    _, _, key = workspace(tenant_a)
    wrong = record(key, cost_usd=Decimal("99"), cost_breakdown={"total_usd": "99"})
    write(tenant_a, [wrong, record(key)])
    call_command("usage_reprice", "--tenant", tenant_a.slug, "--json")
    with in_tenant(tenant_a):
        fixed = UsageRecord.objects.get(pk=wrong.pk)
        assert fixed.cost_usd != Decimal("99")
        assert fixed.previous_costs[0]["cost_usd"].startswith("99")
        incremental = _snapshot()
        rollup_rebuild(timezone.now() - timedelta(days=1), timezone.now())
        assert _snapshot() == incremental


def _daily_snapshot() -> list[tuple]:
    from audit.models import UsageDailyRollup

    return sorted(
        tuple(str(v) for v in row)
        for row in UsageDailyRollup.objects.filter(requests__gt=0).values_list(
            "day", "tz", "model", "proxy_key_id", "status_code", "requests", "cost_usd"
        )
    )


def _waste_snapshot() -> list[tuple]:
    from audit.models import UsageCacheWaste

    return sorted(
        tuple(str(v) for v in row)
        for row in UsageCacheWaste.objects.values_list(
            "hour", "proxy_key_id", "model", "unread_5m_tokens", "unread_1h_tokens", "unread_5m_usd"
        )
    )


def _write_then_read(key, at, *, write_5m=0, write_1h=0, read=0):
    usage = {
        "input_tokens": 10,
        "output_tokens": 5,
        "cache_creation_input_tokens": write_5m + write_1h,
        "cache_read_input_tokens": read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": write_5m,
            "ephemeral_1h_input_tokens": write_1h,
        },
    }
    return record(key, at=at, usage=usage)


def test_unread_cache_writes_are_estimated_per_key_model_and_hour(tenant_a):
    _, _, key = workspace(tenant_a)
    base = timezone.now().replace(minute=5, second=0, microsecond=0) - timedelta(hours=6)
    write(
        tenant_a,
        [
            # Hour 0: 5-minute write of 1000, read back 600 → 400 unread.
            _write_then_read(key, base, write_5m=1000),
            _write_then_read(key, base + timedelta(minutes=3), read=600),
            # Hour 2: 1-hour write of 2000, read 500 in that hour and 1000 in the next → 500.
            _write_then_read(key, base + timedelta(hours=2), write_1h=2000),
            _write_then_read(key, base + timedelta(hours=2, minutes=30), read=500),
        ],
    )
    # A read arriving late (next hour) lowers the 1-hour estimate of the hour before.
    write(tenant_a, [_write_then_read(key, base + timedelta(hours=3, minutes=10), read=1000)])
    with in_tenant(tenant_a):
        rows = {(r[0][:13], r[3], r[4]) for r in _waste_snapshot()}
        assert ((base).isoformat()[:13].replace("T", " "), "400", "0") in rows
        hour2 = (base + timedelta(hours=2)).isoformat()[:13].replace("T", " ")
        assert (hour2, "0", "500") in rows
        incremental_waste, incremental_daily = _waste_snapshot(), _daily_snapshot()
        rollup_rebuild(base - timedelta(hours=1), timezone.now())
        assert _waste_snapshot() == incremental_waste
        assert _daily_snapshot() == incremental_daily


def test_daily_cube_follows_a_time_zone_change(tenant_a):
    from audit.rollups import _TENANT_TZ, daily_ensure
    from tenants.models import Tenant

    _, _, key = workspace(tenant_a)
    write(tenant_a, [record(key, at=timezone.now() - timedelta(hours=h)) for h in range(30)])
    Tenant.objects.filter(pk=tenant_a.pk).update(time_zone="Asia/Tokyo")
    _TENANT_TZ.clear()
    with in_tenant(tenant_a):
        assert daily_ensure("Asia/Tokyo")
        assert {row[1] for row in _daily_snapshot()} == {"Asia/Tokyo"}
        assert sum(int(row[5]) for row in _daily_snapshot()) == 30
        assert not daily_ensure("Asia/Tokyo")
    Tenant.objects.filter(pk=tenant_a.pk).update(time_zone="UTC")
    _TENANT_TZ.clear()
