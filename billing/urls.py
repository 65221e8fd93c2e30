"""Billing URLs on tenant hosts (included from tokenscope/urls_tenant.py)."""

from django.urls import path

from billing import views

urlpatterns = [
    path("", views.billing_page, name="billing"),
    path("checkout-intents/", views.checkout_intent_create, name="billing_checkout_intent"),
    path("change-plan/", views.plan_change, name="billing_plan_change"),
    path("portal/", views.portal_redirect, name="billing_portal"),
    path("invoices/<str:transaction_id>/", views.invoice_redirect, name="billing_invoice"),
    path("success/", views.checkout_success, name="billing_success"),
    path("status/", views.checkout_status, name="billing_checkout_status"),
]
