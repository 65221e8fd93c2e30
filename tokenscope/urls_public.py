"""URLs of the public site on the base domain."""

from django.contrib import admin
from django.urls import include, path

from billing import views as billing_views
from tenants import views as tenant_views

urlpatterns = [
    path("", tenant_views.landing, name="landing"),
    path("", include("privacy.urls_public")),
    path("signup/", tenant_views.signup, name="signup"),
    path("admin/", admin.site.urls),
    path("billing/paddle/webhook/", billing_views.paddle_webhook, name="paddle_webhook"),
]
