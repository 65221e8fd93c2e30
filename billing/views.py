"""Billing pages on tenant hosts and Paddle's webhook on the base domain."""

import logging
from typing import cast

from django.contrib import messages
from django.db import transaction
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts.models import User
from accounts.permissions import admin_required, viewer_required
from billing import paddle, selectors, services
from billing.csp import PADDLE_JS_URL, paddle_csp_extra
from billing.forms import CheckoutIntentForm
from billing.signature import SignatureError, signature_verify
from tokenscope.lib.errors import DomainError

logger = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def paddle_webhook(request: HttpRequest) -> HttpResponse:
    """Verify, store once, enqueue after commit, answer 200; the worker does the rest."""
    from django.conf import settings

    body = request.body
    try:
        signature_verify(
            request.headers.get("Paddle-Signature"), body, settings.PADDLE_WEBHOOK_SECRETS
        )
    except SignatureError as exc:
        logger.warning("paddle webhook rejected reason=%s", exc)
        return HttpResponseBadRequest("invalid signature")
    try:
        with transaction.atomic():
            event = services.webhook_event_store(body)
            if event is not None:
                pk = event.pk
                transaction.on_commit(lambda: services.webhook_event_enqueue(pk))
    except services.InvalidPayload as exc:
        logger.warning("paddle webhook invalid payload reason=%s", exc.message)
        return HttpResponseBadRequest("invalid payload")
    return HttpResponse("ok", content_type="text/plain")


@never_cache
@viewer_required
def billing_page(request: HttpRequest) -> HttpResponse:
    from django.conf import settings

    tenant = request.tenant  # type: ignore[attr-defined]
    invoices, invoice_error = selectors.tenant_invoices(tenant)
    context = {
        **selectors.billing_overview(tenant),
        "invoices": invoices,
        "invoice_error": invoice_error,
        "paddle_js_url": PADDLE_JS_URL,
        "paddle_client_token": settings.PADDLE_CLIENT_TOKEN,
        "paddle_environment": settings.PADDLE_ENVIRONMENT,
    }
    response = render(request, "billing/billing.html", context)
    response.csp_extra = paddle_csp_extra()  # type: ignore[attr-defined]
    return response


@never_cache
@require_POST
@admin_required
def checkout_intent_create(request: HttpRequest) -> HttpResponse:
    form = CheckoutIntentForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"error": "Choose a plan that is offered."}, status=400)
    price = form.cleaned_data["plan_price"]
    tenant = request.tenant  # type: ignore[attr-defined]
    try:
        intent = services.checkout_intent_create(
            tenant, plan_price=price, actor=cast(User, request.user), request=request
        )
    except DomainError as exc:
        return JsonResponse({"error": exc.message}, status=400)
    success = reverse("billing_success") + f"?intent={intent.pk}"
    return JsonResponse(
        {
            "checkout_intent_id": str(intent.pk),
            "price_id": price.paddle_price_id,
            "success_url": request.build_absolute_uri(success),
        }
    )


@never_cache
@require_POST
@admin_required
def plan_change(request: HttpRequest) -> HttpResponse:
    """A paying tenant moves its subscription to another price (prorated by Paddle)."""
    form = CheckoutIntentForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a plan that is offered.")
        return redirect("billing")
    tenant = request.tenant  # type: ignore[attr-defined]
    price = form.cleaned_data["plan_price"]
    user = cast(User, request.user)
    try:
        services.subscription_plan_change(tenant, plan_price=price, actor=user, request=request)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Your plan is now {price.plan.name}.")
    return redirect("billing")


@never_cache
@require_POST
@admin_required
def portal_redirect(request: HttpRequest) -> HttpResponse:
    """A fresh customer portal session per click; never cached, never iframed."""
    tenant = request.tenant  # type: ignore[attr-defined]
    try:
        url = services.portal_session_url(tenant, actor=cast(User, request.user), request=request)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("billing")
    return HttpResponseRedirect(url)


@never_cache
@require_POST
@admin_required
def invoice_redirect(request: HttpRequest, transaction_id: str) -> HttpResponse:
    tenant = request.tenant  # type: ignore[attr-defined]
    invoices, _ = selectors.tenant_invoices(tenant)
    if not any(row["id"] == transaction_id and row["has_invoice"] for row in invoices):
        raise Http404
    try:
        return HttpResponseRedirect(paddle.invoice_url(transaction_id))
    except paddle.PaddleUnavailable:
        messages.error(request, "The invoice is unavailable right now; try again shortly.")
        return redirect("billing")


@never_cache
@viewer_required
def checkout_success(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant  # type: ignore[attr-defined]
    intent = selectors.checkout_intent_for_tenant(tenant, request.GET.get("intent", ""))
    if intent is None:
        raise Http404
    context = {"intent": intent, "status": selectors.checkout_status(tenant, intent)}
    return render(request, "billing/success.html", context)


@never_cache
@viewer_required
def checkout_status(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant  # type: ignore[attr-defined]
    intent = selectors.checkout_intent_for_tenant(tenant, request.GET.get("intent", ""))
    if intent is None:
        raise Http404
    return JsonResponse(selectors.checkout_status(tenant, intent))
