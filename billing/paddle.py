"""The one module that talks to Paddle's API, through the official SDK (paddle_billing).

Every function returns plain dicts shaped like Paddle's API entities (the same shape as a
webhook's `data`), so the rest of billing has one parser for both sources. Errors become
`PaddleUnavailable` with a message that never carries the API key.
"""

import logging
from collections.abc import Iterator
from typing import Any

import requests
from django.conf import settings
from paddle_billing import Client, Environment, Options
from paddle_billing.Entities.Subscriptions import (
    SubscriptionEffectiveFrom,
    SubscriptionProrationBillingMode,
)
from paddle_billing.Resources.CustomerPortalSessions.Operations import (
    CreateCustomerPortalSession,
)
from paddle_billing.Resources.Shared.Operations import OrderBy, Pager
from paddle_billing.Resources.Subscriptions.Operations import (
    CancelSubscription,
    ListSubscriptions,
    UpdateSubscription,
)
from paddle_billing.Resources.Subscriptions.Operations.Update import SubscriptionUpdateItem
from paddle_billing.Resources.Transactions.Operations import ListTransactions
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

logger = logging.getLogger(__name__)
sdk_logger = logging.getLogger("billing.paddle_sdk")
sdk_logger.setLevel(logging.WARNING)

# Tests put a transport here (a requests adapter that fakes Paddle's HTTP API).
transport_override: HTTPAdapter | None = None

REQUEST_TIMEOUT_SECONDS = 15.0


class PaddleUnavailable(Exception):
    """Paddle's API could not be reached or refused the call; safe to log and show."""


def _session() -> requests.Session:
    session = requests.Session()
    session.headers.update(
        {
            "Authorization": f"Bearer {settings.PADDLE_API_KEY}",
            "Content-Type": "application/json",
            "Paddle-Version": "1",
        }
    )
    if transport_override is not None:
        session.mount("https://", transport_override)
    else:
        retries = Retry(total=2, backoff_factor=0.5, status_forcelist=[429, 500, 502, 503, 504])
        session.mount("https://", HTTPAdapter(max_retries=retries))
    return session


def paddle_client() -> Client:
    """An SDK client for the configured environment (sandbox or live)."""
    if not settings.PADDLE_API_KEY and transport_override is None:
        raise PaddleUnavailable("PADDLE_API_KEY is not set.")
    environment = (
        Environment.PRODUCTION if settings.PADDLE_ENVIRONMENT == "live" else Environment.SANDBOX
    )
    return Client(
        settings.PADDLE_API_KEY,
        options=Options(environment),
        http_client=_session(),
        # The SDK logs response bodies (customer emails) at DEBUG: keep its own logger quiet.
        logger=sdk_logger,
        timeout=REQUEST_TIMEOUT_SECONDS,
    )


def _data(resource: Any) -> Any:
    """The raw `data` of the SDK resource's last response."""
    return resource.response.json()["data"]


def _call(what: str, func: Any, *args: Any) -> Any:
    try:
        return func(*args)
    except PaddleUnavailable:
        raise
    except Exception as exc:  # the SDK raises ApiError subclasses and requests errors
        detail = getattr(exc, "detail", "") or type(exc).__name__
        logger.warning("paddle api call failed what=%s error=%s", what, detail)
        raise PaddleUnavailable(f"Paddle's API failed ({what}): {detail}") from exc


def subscription_fetch(subscription_id: str) -> dict[str, Any]:
    """GET /subscriptions/{id}: the subscription as Paddle knows it now."""
    client = paddle_client()
    _call("subscription get", client.subscriptions.get, subscription_id)
    data: dict[str, Any] = _data(client.subscriptions)
    return data


def subscriptions_iter(*, page_size: int = 100) -> Iterator[dict[str, Any]]:
    """Every subscription of the account, page by page (GET /subscriptions)."""
    client = paddle_client()
    after: str | None = None
    while True:
        pager = Pager(after=after, order_by=OrderBy.id_ascending(), per_page=page_size)
        _call("subscription list", client.subscriptions.list, ListSubscriptions(pager=pager))
        body = client.subscriptions.response.json()
        items = body.get("data") or []
        yield from items
        has_more = (body.get("meta") or {}).get("pagination", {}).get("has_more")
        if not items or not has_more:
            return
        after = items[-1]["id"]


def transactions_list(customer_id: str, *, limit: int = 24) -> list[dict[str, Any]]:
    """The customer's most recent transactions (GET /transactions?customer_id=…)."""
    client = paddle_client()
    pager = Pager(order_by=OrderBy.id_descending(), per_page=limit)
    operation = ListTransactions(pager=pager, customer_ids=[customer_id])
    _call("transaction list", client.transactions.list, operation)
    data: list[dict[str, Any]] = _data(client.transactions)
    return data


def invoice_url(transaction_id: str) -> str:
    """A short-lived link to a transaction's invoice PDF (GET /transactions/{id}/invoice)."""
    client = paddle_client()
    _call("invoice get", client.transactions.get_invoice_pdf, transaction_id)
    url: str = _data(client.transactions)["url"]
    return url


def portal_session_url(customer_id: str, subscription_ids: list[str]) -> str:
    """A fresh customer portal session (POST /customers/{id}/portal-sessions); never cache it."""
    client = paddle_client()
    operation = CreateCustomerPortalSession(subscription_ids=subscription_ids[:25])
    session = _call(
        "portal session", client.customer_portal_sessions.create, customer_id, operation
    )
    url: str = session.urls.general.overview
    return url


def subscription_cancel_remote(subscription_id: str, *, immediately: bool) -> dict[str, Any]:
    """POST /subscriptions/{id}/cancel, now or at the end of the billing period."""
    client = paddle_client()
    effective = (
        SubscriptionEffectiveFrom.Immediately
        if immediately
        else SubscriptionEffectiveFrom.NextBillingPeriod
    )
    _call(
        "subscription cancel",
        client.subscriptions.cancel,
        subscription_id,
        CancelSubscription(effective_from=effective),
    )
    data: dict[str, Any] = _data(client.subscriptions)
    return data


def subscription_change_price(subscription_id: str, price_id: str) -> dict[str, Any]:
    """PATCH /subscriptions/{id}: switch to another price, prorated and charged now.

    Paddle's default `on_payment_failure` (prevent_change) leaves the subscription as it was
    when the prorated charge fails.
    """
    client = paddle_client()
    operation = UpdateSubscription(
        items=[SubscriptionUpdateItem(price_id=price_id, quantity=1)],
        proration_billing_mode=SubscriptionProrationBillingMode.ProratedImmediately,
    )
    _call("subscription update", client.subscriptions.update, subscription_id, operation)
    data: dict[str, Any] = _data(client.subscriptions)
    return data
