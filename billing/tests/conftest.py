"""Billing test helpers: Paddle's API faked at the HTTP transport, signed webhook posts."""

import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from django.test import Client

from billing import paddle
from billing.models import PlanPrice
from billing.signature import signature_header
from billing.tests.fake_paddle import FakePaddle, iso
from tenants.models import Plan

SECRET = "pdl_ntfset_01test_secret_new"
OLD_SECRET = "pdl_ntfset_01test_secret_old"
WEBHOOK_URL = "/billing/paddle/webhook/"


@pytest.fixture
def fake_paddle(settings: Any) -> Iterator[FakePaddle]:
    fake = FakePaddle()
    settings.PADDLE_API_KEY = "pdl_sdbx_apikey_test"
    settings.PADDLE_ENVIRONMENT = "sandbox"
    previous = paddle.transport_override
    paddle.transport_override = fake
    yield fake
    paddle.transport_override = previous


@pytest.fixture
def webhook_secrets(settings: Any) -> list[str]:
    settings.PADDLE_WEBHOOK_SECRETS = [SECRET, OLD_SECRET]
    return settings.PADDLE_WEBHOOK_SECRETS


@pytest.fixture
def prices(db: None) -> dict[str, PlanPrice]:
    made = {}
    for slug in ("startup", "team", "business"):
        made[slug] = PlanPrice.objects.create(
            plan=Plan.objects.get(slug=slug),
            environment="sandbox",
            paddle_price_id=f"pri_{slug}_monthly",
            interval="month",
        )
    PlanPrice.objects.create(
        plan=Plan.objects.get(slug="team"),
        environment="live",
        paddle_price_id="pri_team_live",
        interval="month",
    )
    return made


def event(
    event_type: str,
    data: dict[str, Any],
    *,
    occurred_at: datetime,
    event_id: str | None = None,
) -> dict[str, Any]:
    return {
        "event_id": event_id or f"evt_{uuid.uuid4().hex[:26]}",
        "event_type": event_type,
        "occurred_at": iso(occurred_at),
        "notification_id": f"ntf_{uuid.uuid4().hex[:26]}",
        "data": data,
    }


def post_event(client: Client, payload: dict[str, Any], *, secret: str = SECRET) -> Any:
    body = json.dumps(payload).encode()
    return client.post(
        WEBHOOK_URL,
        data=body,
        content_type="application/json",
        HTTP_PADDLE_SIGNATURE=signature_header(body, secret),
    )
