"""Threshold alerts exactly once under concurrent crossings, operational notices, the webhook."""

import json
import threading
from decimal import Decimal

import pytest
from django.core import mail
from django.db import close_old_connections
from django.test import override_settings
from django.utils import timezone
from django_tenants.utils import schema_context

from conftest import run_committed
from proxy.budget_models import BudgetAlert, Notification, SpendSettings
from proxy.budgets.alerts import budget_threshold_alerts, notice_send
from proxy.budgets.enforcer import BudgetEnforcer, Counter, budget_counter_key
from proxy.budgets.periods import period_window
from proxy.budgets.rules import BudgetRule
from proxy.budgets.tasks import notification_webhook_post
from proxy.tests import test_budget_gateway as gateway_tests
from tokenscope.lib.asgi_server import serve_in_thread

pytestmark = pytest.mark.django_db

bud = gateway_tests.bud
committed = gateway_tests.committed
make_budget = gateway_tests.make_budget


def test_each_threshold_alert_is_sent_once_when_many_processes_cross_it_at_once(bud, committed):
    budget = make_budget(
        bud, name="Race", scope="tenant", amount_usd="10", period="month", block=True
    )
    window = period_window("month", timezone.now(), bud.tenant.time_zone)
    rule = BudgetRule(
        id=budget.pk,
        name="Race",
        scope="tenant",
        target=None,
        amount_usd=Decimal(10),
        period="month",
        thresholds=(50, 80, 100),
        block=True,
    )
    counter = Counter(
        key=budget_counter_key(bud.tenant.schema_name, budget.pk, window),
        kind="budget",
        window=window,
        limit=rule.amount_nano,
        amount=0,
        block=True,
        rule=rule,
    )
    mail.outbox.clear()
    barrier = threading.Barrier(12)

    def cross() -> None:
        enforcer = BudgetEnforcer()  # one per "process": no shared in-process memory
        barrier.wait()
        try:
            budget_threshold_alerts(enforcer, bud.tenant.schema_name, counter, rule.amount_nano)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=cross) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    subjects = sorted(m.subject for m in mail.outbox if "'Race'" in m.subject)
    assert subjects == [
        "[TokenScope] Budget 'Race' reached 100 %",
        "[TokenScope] Budget 'Race' reached 50 %",
        "[TokenScope] Budget 'Race' reached 80 %",
    ]
    with schema_context(bud.tenant.schema_name):
        assert BudgetAlert.objects.filter(budget_id=budget.pk).count() == 3
        assert Notification.objects.filter(budget_id=budget.pk).count() == 3
        hundred = Notification.objects.get(budget_id=budget.pk, title__contains="100 %")
    assert "refused until it resets" in hundred.message


def test_an_operational_notice_reaches_admins_once_an_hour(bud, committed):
    from django.core.cache import cache

    with schema_context(bud.tenant.schema_name):
        cache.delete("notice:unpriced_model")
    mail.outbox.clear()

    first = run_committed(
        notice_send, bud.tenant, "unpriced_model", "Model claude-x has no price yet."
    )
    second = run_committed(
        notice_send, bud.tenant, "unpriced_model", "Model claude-x has no price yet."
    )

    assert (first, second) == (True, False)
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["owner@tenant-bud.example.com"]
    with schema_context(bud.tenant.schema_name):
        assert Notification.objects.filter(kind="unpriced_model").count() == 1


def test_the_webhook_posts_slack_compatible_json_without_secrets(bud, committed):
    received: list[dict] = []

    async def receiver(scope, receive, send):
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        received.append(json.loads(body))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    def post(url: str) -> int:
        with schema_context(bud.tenant.schema_name):
            SpendSettings.objects.update_or_create(
                singleton=True, defaults={"webhook_url": url + "/hook"}
            )
            notification = Notification.objects.create(
                kind="budget_threshold", title="Budget 'Ops' reached 80 %", message="USD 8 of 10"
            )
            try:
                return notification_webhook_post(notification.pk)
            finally:
                SpendSettings.objects.all().delete()

    with serve_in_thread(receiver) as url:
        refused = run_committed(post, url)  # 127.0.0.1: our own network
        with override_settings(BUDGET_WEBHOOK_ALLOW_PRIVATE=True):
            status = run_committed(post, url)

    assert refused == 0
    assert status == 200
    assert received == [{"text": "*Budget 'Ops' reached 80 %*\nUSD 8 of 10"}]
