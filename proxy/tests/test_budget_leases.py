"""Budget leases: requests reserved from credit this process holds in Redis, with real Redis,
PostgreSQL and live gateways (proxy/budgets/enforcer.py, "leases" in docs/budgets.md)."""

import asyncio
import json
import time
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from conftest import run_committed
from proxy.budget_models import Budget
from proxy.budgets.enforcer import LEASE_SHARE, BudgetEnforcer
from proxy.budgets.rules import usd_to_nano
from proxy.budgets.services import budget_update
from proxy.gateway import Gateway
from proxy.gateway.routes import route_match
from proxy.tests import test_budget_gateway as gateway_tests
from proxy.tests.gateway_support import extra_key
from tokenscope.lib.asgi_server import serve_in_thread

pytestmark = pytest.mark.django_db

bud = gateway_tests.bud
committed = gateway_tests.committed
body_for = gateway_tests.body_for
worst_of = gateway_tests.worst_of
make_budget = gateway_tests.make_budget
key_id_of = gateway_tests.key_id_of
post_one = gateway_tests.post_one
post_many = gateway_tests.post_many
spent = gateway_tests.spent
counter = gateway_tests.counter
wait_settled = gateway_tests.wait_settled


def _evalsha_calls() -> int:
    stats = gateway_tests.redis_client().info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def _key_with_roomy_budget(ws, name: str) -> tuple[str, Any, Budget]:
    """A proxy key of its own with a blocking USD 1,000 daily budget: leases are granted."""
    raw_key = run_committed(extra_key, ws, name=f"lease-{name.lower()}")
    key_id = key_id_of(ws, raw_key)
    budget = make_budget(
        ws, name=name, scope="key", target=key_id, amount_usd="1000", period="day", block=True
    )
    return raw_key, key_id, budget


def test_requests_under_a_roomy_budget_reserve_from_a_lease_and_the_counter_ends_exact(
    proxy_url, bud, committed
):
    raw_key, key_id, budget = _key_with_roomy_budget(bud, "Roomy")
    raw = body_for("Lease me.", max_tokens=100, output_tokens=50)
    assert post_one(proxy_url, raw_key, raw).status_code == 200  # rules loaded, lease taken
    wait_settled(bud, budget)
    before = _evalsha_calls()

    for _ in range(30):
        assert post_one(proxy_url, raw_key, raw).status_code == 200

    values = wait_settled(bud, budget)  # also waits for the unused lease to come back
    # Each exchange is settled with one script call; reserving took only a few more, not 30.
    assert _evalsha_calls() - before < 30 + 10
    assert int(values[b"r"]) == 0
    with schema_context(bud.tenant.schema_name):
        from audit.models import UsageRecord

        costs = [r.cost_usd for r in UsageRecord.objects.filter(proxy_key_id=key_id)]
    assert len(costs) == 31
    assert int(values[b"s"]) == sum(usd_to_nano(c) for c in costs)


def test_two_gateway_processes_with_leases_never_overspend_and_leave_nothing_stranded(
    proxy_url, bud, committed
):
    raw_key = run_committed(extra_key, bud, name="lease-two")
    key_id = key_id_of(bud, raw_key)
    raw = body_for("Share the budget.", max_tokens=400, output_tokens=300, delay_ms=300)
    worst = worst_of(raw)
    # Roomy enough that both processes get leases (1/16 of what is left is several requests).
    limit = (worst * 60).quantize(Decimal("0.000001"))
    budget = make_budget(
        bud, name="Two", scope="key", target=key_id, amount_usd=limit, period="day", block=True
    )
    with (
        serve_in_thread(Gateway(), lifespan="on") as url_a,
        serve_in_thread(Gateway(), lifespan="on") as url_b,
    ):

        async def both() -> list:
            a, b = await asyncio.gather(
                post_many(url_a, raw_key, [raw] * 60), post_many(url_b, raw_key, [raw] * 60)
            )
            return a + b

        responses = asyncio.run(both())
        admitted = [r for r in responses if r.status_code == 200]
        assert len(admitted) + len([r for r in responses if r.status_code == 402]) == 120
        assert admitted
        # Three writer processes start and settle here at once: slow on a busy machine.
        wait_settled(bud, budget, timeout=60)
        assert spent(bud, key_id) <= limit
        # Leases given back: the rest of the budget can still be spent, to the last request.
        fast = body_for("Share the budget.", max_tokens=400, output_tokens=300)
        for url in [url_a, url_b] * 100:
            if post_one(url, raw_key, fast).status_code == 402:
                wait_settled(bud, budget)
                if post_one(url, raw_key, fast).status_code == 402:
                    break
        else:
            raise AssertionError("the budget was never used up")
    values = wait_settled(bud, budget)
    total = spent(bud, key_id)
    assert total <= limit
    assert limit - total < worst_of(fast)
    assert int(values[b"s"]) == usd_to_nano(total)


def test_a_lowered_budget_refuses_the_next_request_although_credit_was_leased(
    proxy_url, bud, committed
):
    raw_key, key_id, budget = _key_with_roomy_budget(bud, "Lowered")
    raw = body_for("Lower me.", max_tokens=100, output_tokens=50)
    gateway = Gateway()
    with serve_in_thread(gateway, lifespan="on") as url:
        for _ in range(3):
            assert post_one(url, raw_key, raw).status_code == 200
        heard_before = gateway.keys.changed_at(bud.tenant.short_id)

        def lower() -> None:
            with schema_context(bud.tenant.schema_name):
                fresh = Budget.objects.get(pk=budget.pk)
                budget_update(
                    None,
                    tenant=bud.tenant,
                    budget=fresh,
                    name="Lowered",
                    scope="key",
                    target=key_id,
                    amount_usd=Decimal("0.000001"),
                    period="day",
                    block=True,
                )

        run_committed(lower)
        deadline = time.monotonic() + 5
        while gateway.keys.changed_at(bud.tenant.short_id) == heard_before:
            assert time.monotonic() < deadline, "the gateway never heard of the change"
            time.sleep(0.01)

        refused = post_one(url, raw_key, raw)

    assert refused.status_code == 402
    assert "'Lowered'" in refused.json()["error"]["message"]


def test_a_lease_is_at_most_a_sixteenth_of_what_is_left_and_none_below_one_request(
    proxy_url, bud, committed
):
    raw = body_for("Size me.", max_tokens=200, output_tokens=10)
    worst = usd_to_nano(worst_of(raw))
    for requests_left, lease_expected in ((100, True), (10, False)):
        raw_key = run_committed(extra_key, bud, name=f"lease-size-{requests_left}")
        key_id = key_id_of(bud, raw_key)
        budget = make_budget(
            bud,
            name=f"Size {requests_left}",
            scope="key",
            target=key_id,
            amount_usd=Decimal(worst * requests_left) / 10**9,
            period="day",
            block=True,
        )
        limit = usd_to_nano(budget.amount_usd)
        ex = SimpleNamespace(
            route=route_match("POST", "/v1/messages"),
            body=json.loads(raw),
            body_bytes=raw,
            created_at=timezone.now(),
            reservation=None,
        )
        key = SimpleNamespace(
            id=key_id,
            project_id=bud.project_id,
            cost_center_id=bud.cost_center_id,
            owner_id=None,
            rpm_limit=None,
            input_tpm_limit=None,
            output_tpm_limit=None,
            tenant=SimpleNamespace(
                schema_name=bud.tenant.schema_name, short_id=bud.tenant.short_id
            ),
        )

        asyncio.run(BudgetEnforcer().reserve(ex, key))

        amount = next(c.amount for c in ex.reservation.counters if c.kind == "budget")
        assert amount == worst
        lease = (limit - amount) // LEASE_SHARE if lease_expected else 0
        assert lease_expected is (lease >= amount)
        assert int(counter(bud, budget)[b"r"]) == amount + lease
