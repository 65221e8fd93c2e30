"""URLs of the public site on the base domain."""

from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.urls import include, path

from billing import views as billing_views
from tenants import views as tenant_views

# Operators sign in through allauth (with its MFA step), not the admin's own password form.
admin.site.login = login_required(admin.site.login)  # type: ignore[method-assign]

urlpatterns = [
    path("", tenant_views.landing, name="landing"),
    path("", include("privacy.urls_public")),
    path("signup/", tenant_views.signup, name="signup"),
    path("admin/", admin.site.urls),
    path("billing/paddle/webhook/", billing_views.paddle_webhook, name="paddle_webhook"),
    path("accounts/", include("allauth.urls")),
]
