"""Budgets enforced by the live gateway against the fake upstream, with real Redis and PostgreSQL.

Budgets are made and removed with committed writes (the gateway reads them from its own
threads), in a tenant of their own so no other test sees them.
"""

import asyncio
import json
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest
import redis
from django.conf import settings
from django.core import mail
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from django_tenants.utils import schema_context

from audit.models import UsageRecord
from conftest import PASSWORD, run_committed
from proxy.budget_models import Budget, BudgetAlert, Notification
from proxy.budgets.estimator import message_worst_case
from proxy.budgets.periods import period_window
from proxy.budgets.rules import usd_to_nano
from proxy.budgets.services import budget_create
from proxy.gateway import Gateway
from proxy.tests.gateway_support import (
    ANTHROPIC_KEY_A,
    Workspace,
    extra_key,
    wait_record,
    workspace_create,
)
from tenants.models import Tenant
from tenants.services import tenant_create
from tokenscope.lib.asgi_server import serve_in_thread

MODEL = "claude-sonnet-4-6"
VERSION = {"anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def bud(tenants_ab, django_db_blocker) -> Workspace:
    """A tenant of its own (budgets on it must not touch other tests) with one workspace."""
    with django_db_blocker.unblock():
        existing = Tenant.objects.filter(slug="tenant-bud").first()
        if existing is not None:  # a reused database: its workspace is there already
            return _workspace_of(existing)
        tenant = Tenant.objects.filter(slug="tenant-bud").first() or tenant_create(
            name="Tenant Budgets",
            slug="tenant-bud",
            owner_email="owner@tenant-bud.example.com",
            owner_password=PASSWORD,
            owner_email_verified=True,
        )
        return workspace_create(tenant, ANTHROPIC_KEY_A)


pytestmark = pytest.mark.django_db


def _clean(schema: str) -> None:
    with schema_context(schema), transaction.atomic():
        # Lock first so that an alert the record writer inserts right now is deleted too.
        list(Budget.objects.select_for_update())
        Budget.objects.all().delete()
        Notification.objects.all().delete()


def _records_quiet(schema: str) -> None:
    """Wait until the gateway's writer has written this test's records (it runs in a thread
    that may only use the database while a test runs)."""
    previous = -1
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with schema_context(schema):
            count = UsageRecord.objects.count()
        if count == previous:
            return
        previous = count
        time.sleep(0.2)


@pytest.fixture
def committed(bud):
    """Every budget and notification of tenant-bud is removed after the test."""
    yield
    _records_quiet(bud.tenant.schema_name)
    run_committed(_clean, bud.tenant.schema_name)


def _workspace_of(tenant: Tenant) -> Workspace:
    from proxy.models import ProxyKey

    with schema_context(tenant.schema_name):
        key = ProxyKey.objects.get(name="main")
    return Workspace(tenant, "", key.project_id, key.cost_center_id, key.pk)


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def body_for(text: str, *, max_tokens: int, output_tokens: int, delay_ms: int = 0) -> bytes:
    directive = {"output_tokens": output_tokens}
    if delay_ms:
        directive["delay_ms"] = delay_ms
    body = {
        "model": MODEL,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": f"{text}[[fake:{json.dumps(directive)}]]"}],
    }
    return json.dumps(body).encode()


def worst_of(raw: bytes) -> Decimal:
    return message_worst_case(json.loads(raw), raw, at=timezone.now())


async def post_many(url: str, key: str, bodies: list[bytes]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        return await asyncio.gather(
            *[
                client.post(
                    "/v1/messages",
                    content=raw,
                    headers={"x-api-key": key, "content-type": "application/json", **VERSION},
                )
                for raw in bodies
            ]
        )


def post_one(url: str, key: str, raw: bytes) -> httpx.Response:
    return httpx.post(
        url + "/v1/messages",
        content=raw,
        headers={"x-api-key": key, "content-type": "application/json", **VERSION},
        timeout=30,
    )


def key_id_of(ws: Workspace, raw_key: str):
    from proxy.models import ProxyKey, proxy_key_hash

    with schema_context(ws.tenant.schema_name):
        return ProxyKey.objects.get(key_hash=proxy_key_hash(raw_key)).pk


def spent(ws: Workspace, key_id) -> Decimal:
    with schema_context(ws.tenant.schema_name):
        total = sum(
            (r.cost_usd for r in UsageRecord.objects.filter(proxy_key_id=key_id)), Decimal(0)
        )
    return Decimal(total)


def counter(ws: Workspace, budget: Budget) -> Any:
    window = period_window(budget.period, timezone.now(), ws.tenant.time_zone)
    return redis_client().hgetall(f"ts:bud:{ws.tenant.schema_name}:{budget.pk}:{window.key}")


def wait_settled(ws: Workspace, budget: Budget, timeout: float = 15.0) -> Any:
    """Wait until nothing is reserved on the budget (every exchange settled, every lease back)."""
    started = time.monotonic()
    changes: list[tuple[float, int]] = []  # (seconds waited, reserved) each time it changed
    while True:
        values = counter(ws, budget)
        reserved = int(values[b"r"]) if values else -1
        if not changes or changes[-1][1] != reserved:
            changes.append((round(time.monotonic() - started, 2), reserved))
        if reserved == 0:
            return values
        if time.monotonic() - started > timeout:
            raise AssertionError(f"budget {budget.pk} still holds reservations: {changes}")
        time.sleep(0.05)


def make_budget(ws: Workspace, **options) -> Budget:
    def create() -> Budget:
        with schema_context(ws.tenant.schema_name):
            return budget_create(None, tenant=ws.tenant, **options)

    return run_committed(create)


def test_a_hundred_concurrent_requests_never_overspend_a_blocking_budget(proxy_url, bud, committed):
    raw_key = run_committed(extra_key, bud, name="concurrency")
    key_id = key_id_of(bud, raw_key)
    raw = body_for("Classify this ticket.", max_tokens=1000, output_tokens=500, delay_ms=1500)
    worst = worst_of(raw)
    limit = worst * 10
    budget = make_budget(
        bud,
        name="Ten calls",
        scope="key",
        target=key_id,
        amount_usd=limit,
        period="day",
        block=True,
    )

    responses = asyncio.run(post_many(proxy_url, raw_key, [raw] * 100))

    admitted = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 402]
    assert len(admitted) + len(refused) == 100
    assert len(admitted) >= 10
    error = refused[0].json()["error"]
    assert error["type"] == "billing_error"
    assert "'Ten calls'" in error["message"]
    assert "resets at" in error["message"]
    assert refused[0].headers["x-should-retry"] == "false"
    values = wait_settled(bud, budget)
    assert spent(bud, key_id) <= limit
    # Real costs are lower than the reservations: settlement gave the difference back...
    assert limit - spent(bud, key_id) >= worst
    # ...so further requests are admitted, up to the limit and never beyond it.
    raw_fast = body_for("Classify this ticket.", max_tokens=1000, output_tokens=500)
    assert worst_of(raw_fast) <= worst
    more = 0
    while True:
        response = post_one(proxy_url, raw_key, raw_fast)
        if response.status_code == 402:
            wait_settled(bud, budget)
            if post_one(proxy_url, raw_key, raw_fast).status_code == 402:
                break
        more += 1
        assert more < 200
    values = wait_settled(bud, budget)
    total = spent(bud, key_id)
    assert more > 0
    assert total <= limit
    assert limit - total < worst_of(raw_fast)
    with schema_context(bud.tenant.schema_name):
        nano = sum(usd_to_nano(r.cost_usd) for r in UsageRecord.objects.filter(proxy_key_id=key_id))
        refusals = UsageRecord.objects.filter(proxy_key_id=key_id, status_code=402).count()
    assert int(values[b"s"]) == nano
    assert refusals >= len(refused)


def test_a_budget_created_mid_period_counts_the_earlier_spend(proxy_url, bud, committed):
    raw_key = run_committed(extra_key, bud, name="mid-period")
    key_id = key_id_of(bud, raw_key)
    raw = body_for("Earlier work.", max_tokens=400, output_tokens=400)
    for _ in range(3):
        assert post_one(proxy_url, raw_key, raw).status_code == 200
    deadline = time.monotonic() + 10
    while spent(bud, key_id) == 0 or len(_records(bud, key_id)) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    earlier = spent(bud, key_id)
    # Room for exactly one more call at its worst case, on top of what was already spent.
    limit = (earlier + worst_of(raw) * Decimal("1.5")).quantize(Decimal("0.000001"))
    budget = make_budget(
        bud, name="Late", scope="key", target=key_id, amount_usd=limit, period="month", block=True
    )

    first = post_one(proxy_url, raw_key, raw)
    wait_settled(bud, budget)
    second = post_one(proxy_url, raw_key, raw)

    assert first.status_code == 200
    assert second.status_code == 402
    assert spent(bud, key_id) <= limit


def _records(ws: Workspace, key_id) -> list[UsageRecord]:
    with schema_context(ws.tenant.schema_name):
        return list(UsageRecord.objects.filter(proxy_key_id=key_id))


def test_enforcement_stays_exact_after_redis_is_flushed_mid_period(proxy_url, bud, committed):
    raw_key = run_committed(extra_key, bud, name="flush")
    key_id = key_id_of(bud, raw_key)
    raw = body_for("Flush me.", max_tokens=300, output_tokens=300)
    worst = worst_of(raw)
    limit = (worst * 4).quantize(Decimal("0.000001"))
    budget = make_budget(
        bud, name="Flush", scope="key", target=key_id, amount_usd=limit, period="week", block=True
    )
    for _ in range(2):
        assert post_one(proxy_url, raw_key, raw).status_code == 200
    before = wait_settled(bud, budget)

    redis_client().flushdb()
    admitted = 0
    while post_one(proxy_url, raw_key, raw).status_code == 200:
        admitted += 1
        wait_settled(bud, budget)
        assert admitted < 20

    after = wait_settled(bud, budget)
    assert after[b"e"] != before[b"e"]  # the counter was rebuilt from PostgreSQL
    total = spent(bud, key_id)
    assert total <= limit
    assert limit - total < worst
    assert int(after[b"s"]) == sum(usd_to_nano(r.cost_usd) for r in _records(bud, key_id))


def test_with_redis_unreachable_blocking_budgets_refuse_and_alert_only_budgets_pass(
    proxy_url, bud, committed
):
    soft_key = run_committed(extra_key, bud, name="redis-down-soft")
    hard_key = run_committed(extra_key, bud, name="redis-down-hard")
    raw = body_for("Is Redis there?", max_tokens=50, output_tokens=10)
    for name, raw_key, block in (("Soft", soft_key, False), ("Hard", hard_key, True)):
        make_budget(
            bud,
            name=name,
            scope="key",
            target=key_id_of(bud, raw_key),
            amount_usd="5",
            period="day",
            block=block,
        )
    with override_settings(BUDGET_REDIS_URL="redis://127.0.0.1:1/0"):
        gateway = Gateway()
    with serve_in_thread(gateway, lifespan="on") as url:
        passed = post_one(url, soft_key, raw)
        refused = post_one(url, hard_key, raw)

    assert passed.status_code == 200
    assert refused.status_code == 503
    assert refused.json()["error"]["type"] == "overloaded_error"
    assert refused.headers["x-should-retry"] == "true"
    record = wait_record(bud.tenant, refused.headers["x-tokenscope-request-id"])
    assert (record.status_code, record.error_type) == (503, "overloaded_error")
    # Reconciled afterwards: with Redis back, the alert-only counter is rebuilt from
    # PostgreSQL and includes what passed while Redis was away.
    soft_id = key_id_of(bud, soft_key)
    wait_record(bud.tenant, passed.headers["x-tokenscope-request-id"])
    assert post_one(proxy_url, soft_key, raw).status_code == 200
    with schema_context(bud.tenant.schema_name):
        soft = Budget.objects.get(name="Soft")
    values = wait_settled(bud, soft)
    assert int(values[b"s"]) == sum(usd_to_nano(r.cost_usd) for r in _records(bud, soft_id))
    assert len(_records(bud, soft_id)) == 2


def test_each_threshold_email_goes_out_once_when_many_requests_cross_it(proxy_url, bud, committed):
    raw_key = run_committed(extra_key, bud, name="alerts")
    key_id = key_id_of(bud, raw_key)
    raw = body_for("Alert me.", max_tokens=200, output_tokens=200)
    # 20 calls of 200 output tokens at $15/M cost 0.06 plus input: every threshold is crossed.
    budget = make_budget(
        bud,
        name="Alerts",
        scope="key",
        target=key_id,
        amount_usd="0.03",
        period="day",
        block=False,
        extra_recipients="finance@tenant-bud.example.com",
    )
    mail.outbox.clear()

    responses = asyncio.run(post_many(proxy_url, raw_key, [raw] * 20))

    assert all(r.status_code == 200 for r in responses)
    wait_settled(bud, budget)
    deadline = time.monotonic() + 10
    while len([m for m in mail.outbox if "'Alerts'" in m.subject]) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)
    subjects = sorted(m.subject for m in mail.outbox if "'Alerts'" in m.subject)
    assert subjects == [
        "[TokenScope] Budget 'Alerts' reached 100 %",
        "[TokenScope] Budget 'Alerts' reached 50 %",
        "[TokenScope] Budget 'Alerts' reached 80 %",
    ]
    message = next(m for m in mail.outbox if "'Alerts'" in m.subject)
    assert "finance@tenant-bud.example.com" in message.to
    assert "owner@tenant-bud.example.com" in message.to
    with schema_context(bud.tenant.schema_name):
        assert BudgetAlert.objects.filter(budget=budget).count() == 3
        assert Notification.objects.filter(budget=budget).count() == 3


def test_a_proxy_keys_request_rate_limit_answers_429_with_retry_after(proxy_url, bud, committed):
    raw_key = run_committed(extra_key, bud, name="rpm", rpm_limit=2)
    raw = body_for("Quick one.", max_tokens=10, output_tokens=5)

    statuses = [post_one(proxy_url, raw_key, raw) for _ in range(3)]

    # Two fit in the minute's window unless the minute turned between them: then three do.
    limited = [r for r in statuses if r.status_code == 429]
    assert [r.status_code for r in statuses][:2] == [200, 200]
    for response in limited:
        assert response.json()["error"]["type"] == "rate_limit_error"
        assert 1 <= int(response.headers["retry-after"]) <= 60
        assert response.headers["x-should-retry"] == "true"
    for response in statuses:  # every call is recorded, refusals included
        wait_record(bud.tenant, response.headers["x-tokenscope-request-id"])


def test_the_plans_monthly_request_allowance_is_enforced_with_the_same_counters(
    proxy_url, bud, committed
):
    from tenants.models import Plan

    raw_key = run_committed(extra_key, bud, name="plan")
    raw = body_for("Plan me.", max_tokens=10, output_tokens=5)
    month = period_window("month", timezone.now(), bud.tenant.time_zone)

    def use_plan(limit: int | None) -> None:
        plan = Plan.objects.get(slug=Plan.Slug.ENTERPRISE)
        Plan.objects.filter(pk=plan.pk).update(monthly_request_limit=limit)
        Tenant.objects.filter(pk=bud.tenant.pk).update(plan=plan)
        with schema_context(bud.tenant.schema_name):
            used = (
                UsageRecord.objects.filter(created_at__gte=month.start, upstream_ms__isnull=False)
                .filter(kind="messages")
                .count()
            )
        Plan.objects.filter(pk=plan.pk).update(monthly_request_limit=used + 1)
        budget_redis_bump()

    def budget_redis_bump() -> None:
        client = redis_client()
        client.incr(f"ts:budget-gen:{bud.tenant.schema_name}")
        client.delete(f"ts:plan:{bud.tenant.schema_name}:{month.key}")

    free = Tenant.objects.get(pk=bud.tenant.pk).plan_id
    run_committed(use_plan, None)
    try:
        first = post_one(proxy_url, raw_key, raw)
        second = post_one(proxy_url, raw_key, raw)
    finally:
        run_committed(lambda: Tenant.objects.filter(pk=bud.tenant.pk).update(plan_id=free))
        budget_redis_bump()

    assert first.status_code == 200, first.text
    assert second.status_code == 429
    assert "allowance" in second.json()["error"]["message"]
    assert second.headers["x-should-retry"] == "false"
    assert int(second.headers["retry-after"]) > 0


def test_every_applicable_budget_is_checked_and_a_refusal_reserves_nothing(
    proxy_url, bud, committed
):
    raw_key = run_committed(extra_key, bud, name="several")
    key_id = key_id_of(bud, raw_key)
    raw = body_for("Several budgets.", max_tokens=100, output_tokens=100)
    worst = worst_of(raw)
    roomy = make_budget(
        bud, name="Roomy", scope="tenant", amount_usd="1000", period="month", block=True
    )
    center = make_budget(
        bud,
        name="Center",
        scope="cost_center",
        target=bud.cost_center_id,
        amount_usd="1000",
        period="week",
        block=False,
    )
    tight = make_budget(
        bud,
        name="Tight key",
        scope="key",
        target=key_id,
        amount_usd=(worst * Decimal("0.5")).quantize(Decimal("0.000001")),
        period="day",
        block=True,
    )
    assert post_one(proxy_url, "tsk_missing_" + "x" * 40, raw).status_code == 401

    refused = post_one(proxy_url, raw_key, raw)

    assert refused.status_code == 402
    assert "'Tight key'" in refused.json()["error"]["message"]
    wait_record(bud.tenant, refused.headers["x-tokenscope-request-id"])
    for budget in (roomy, center, tight):
        values = counter(bud, budget)
        assert int(values[b"r"]) == 0  # all or nothing: the refusal held nothing anywhere
