"""A fake of Paddle's HTTP API at the transport boundary: a requests adapter that the real SDK
client sends its requests through. State lives in memory; every call is recorded."""

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from requests.adapters import HTTPAdapter

# Relative to the real clock so that "in the future" stays true whenever the tests run.
T0 = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def price_data(price_id: str, *, interval: str = "month") -> dict[str, Any]:
    return {
        "id": price_id,
        "product_id": "pro_01tokenscope",
        "name": "Plan",
        "description": "Plan price",
        "type": "standard",
        "billing_cycle": {"interval": interval, "frequency": 1},
        "trial_period": None,
        "tax_mode": "account_setting",
        "unit_price": {"amount": "4900", "currency_code": "USD"},
        "unit_price_overrides": [],
        "quantity": {"minimum": 1, "maximum": 1},
        "status": "active",
        "custom_data": None,
        "import_meta": None,
        "created_at": iso(T0),
        "updated_at": iso(T0),
    }


def subscription_data(
    sub_id: str = "sub_01aaaaaaaaaaaaaaaaaaaaaaaa",
    *,
    status: str = "active",
    customer_id: str = "ctm_01aaaaaaaaaaaaaaaaaaaaaaaa",
    price_id: str = "pri_team_monthly",
    intent_id: str | None = None,
    period_start: datetime = T0,
    period_end: datetime | None = None,
    updated_at: datetime = T0,
    scheduled_change: dict[str, Any] | None = None,
    canceled_at: datetime | None = None,
) -> dict[str, Any]:
    """A subscription entity as Paddle's API and webhooks carry it."""
    period_end = period_end or period_start + timedelta(days=30)
    return {
        "id": sub_id,
        "status": status,
        "customer_id": customer_id,
        "address_id": "add_01aaaaaaaaaaaaaaaaaaaaaaaa",
        "business_id": None,
        "currency_code": "USD",
        "created_at": iso(T0),
        "updated_at": iso(updated_at),
        "started_at": iso(T0),
        "first_billed_at": iso(T0),
        "next_billed_at": iso(period_end) if status == "active" else None,
        "paused_at": None,
        "canceled_at": iso(canceled_at) if canceled_at else None,
        "discount": None,
        "collection_mode": "automatic",
        "billing_details": None,
        "current_billing_period": (
            {"starts_at": iso(period_start), "ends_at": iso(period_end)}
            if status != "canceled"
            else None
        ),
        "billing_cycle": {"interval": "month", "frequency": 1},
        "scheduled_change": scheduled_change,
        "items": [
            {
                "status": "active",
                "quantity": 1,
                "recurring": True,
                "created_at": iso(T0),
                "updated_at": iso(T0),
                "previously_billed_at": iso(T0),
                "next_billed_at": iso(period_end),
                "trial_dates": None,
                "price": price_data(price_id),
                "product": {
                    "id": "pro_01tokenscope",
                    "name": "TokenScope",
                    "description": None,
                    "type": "standard",
                    "tax_category": "saas",
                    "image_url": None,
                    "custom_data": None,
                    "status": "active",
                    "import_meta": None,
                    "created_at": iso(T0),
                    "updated_at": iso(T0),
                },
            }
        ],
        "custom_data": {"checkout_intent_id": intent_id} if intent_id else None,
        "management_urls": None,
        "import_meta": None,
    }


def transaction_data(
    txn_id: str = "txn_01aaaaaaaaaaaaaaaaaaaaaaaa",
    *,
    status: str = "completed",
    customer_id: str = "ctm_01aaaaaaaaaaaaaaaaaaaaaaaa",
    subscription_id: str | None = "sub_01aaaaaaaaaaaaaaaaaaaaaaaa",
    invoice_number: str | None = "325-10566",
    grand_total: str = "4900",
    billed_at: datetime = T0,
    intent_id: str | None = None,
) -> dict[str, Any]:
    totals = {
        "subtotal": grand_total,
        "discount": "0",
        "tax": "0",
        "total": grand_total,
        "credit": "0",
        "credit_to_balance": "0",
        "balance": "0",
        "grand_total": grand_total,
        "grand_total_tax": "0",
        "fee": None,
        "earnings": None,
        "currency_code": "USD",
    }
    return {
        "id": txn_id,
        "status": status,
        "customer_id": customer_id,
        "address_id": "add_01aaaaaaaaaaaaaaaaaaaaaaaa",
        "business_id": None,
        "custom_data": {"checkout_intent_id": intent_id} if intent_id else None,
        "origin": "web" if intent_id else "subscription_recurring",
        "collection_mode": "automatic",
        "subscription_id": subscription_id,
        "invoice_id": "inv_01aaaaaaaaaaaaaaaaaaaaaaaa" if invoice_number else None,
        "invoice_number": invoice_number,
        "billing_details": None,
        "billing_period": None,
        "currency_code": "USD",
        "discount_id": None,
        "created_at": iso(billed_at),
        "updated_at": iso(billed_at),
        "billed_at": iso(billed_at),
        "items": [],
        "details": {"tax_rates_used": [], "totals": totals, "line_items": []},
        "payments": [],
        "checkout": None,
    }


class FakePaddle(HTTPAdapter):
    """Answers the Paddle API routes billing uses; `down=True` refuses every connection."""

    def __init__(self) -> None:
        super().__init__()
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.transactions: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str]] = []
        self.down = False
        self.portal_sessions = 0
        self.updates: list[dict[str, Any]] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        url = requests.utils.urlparse(request.url or "")
        self.calls.append((request.method or "", url.path))
        if self.down:
            raise requests.ConnectionError("fake paddle is down")
        assert url.hostname == "sandbox-api.paddle.com", url.hostname
        assert (request.headers.get("Authorization") or "").startswith("Bearer ")
        body = json.loads(request.body) if request.body else {}
        path = url.path
        if (m := re.fullmatch(r"/subscriptions/([^/]+)", path)) and request.method == "PATCH":
            sub = self.subscriptions[m[1]]
            self.updates.append(body)
            sub["items"][0]["price"] = price_data(body["items"][0]["price_id"])
            sub["updated_at"] = iso(datetime.now(UTC))
            return self._json(request, {"data": sub})
        if m := re.fullmatch(r"/subscriptions/([^/]+)", path):
            sub = self.subscriptions.get(m[1])
            return self._json(request, {"data": sub} if sub else None, 200 if sub else 404)
        if m := re.fullmatch(r"/subscriptions/([^/]+)/cancel", path):
            sub = self.subscriptions[m[1]]
            if body.get("effective_from") == "immediately":
                sub.update(status="canceled", canceled_at=iso(T0), current_billing_period=None)
            else:
                ends = sub["current_billing_period"]["ends_at"]
                sub["scheduled_change"] = {
                    "action": "cancel",
                    "effective_at": ends,
                    "resume_at": None,
                }
            sub["updated_at"] = iso(datetime.now(UTC))
            return self._json(request, {"data": sub})
        if path == "/subscriptions":
            items = sorted(self.subscriptions.values(), key=lambda s: s["id"])
            return self._list(request, items)
        if path == "/transactions":
            return self._list(request, list(self.transactions))
        if m := re.fullmatch(r"/transactions/([^/]+)/invoice", path):
            return self._json(request, {"data": {"url": f"https://files.example.com/{m[1]}.pdf"}})
        if m := re.fullmatch(r"/customers/([^/]+)/portal-sessions", path):
            self.portal_sessions += 1
            session = {
                "id": f"cpls_{self.portal_sessions:026d}",
                "customer_id": m[1],
                "urls": {
                    "general": {
                        "overview": f"https://customer-portal.paddle.com/cpl_{self.portal_sessions}"
                    },
                    "subscriptions": [],
                },
                "created_at": iso(T0),
            }
            return self._json(request, {"data": session}, 201)
        return self._json(request, None, 404)

    def _list(self, request: requests.PreparedRequest, items: list[Any]) -> requests.Response:
        meta = {
            "request_id": "req_fake",
            "pagination": {
                "per_page": 100,
                "next": "",
                "has_more": False,
                "estimated_total": len(items),
            },
        }
        return self._json(request, {"data": items, "meta": meta})

    def _json(
        self, request: requests.PreparedRequest, body: dict[str, Any] | None, status: int = 200
    ) -> requests.Response:
        if body is None:
            body = {
                "error": {
                    "type": "request_error",
                    "code": "not_found",
                    "detail": "Not found",
                    "documentation_url": "https://developer.paddle.com/errors/shared/not_found",
                },
                "meta": {"request_id": "req_fake"},
            }
        response = requests.Response()
        response.status_code = status
        response._content = json.dumps(body).encode()
        response.headers["Content-Type"] = "application/json"
        response.url = request.url or ""
        response.request = request
        response.encoding = "utf-8"
        return response
