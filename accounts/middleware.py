from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from tenants.models import Tenant

# Pages a user must reach before MFA is set up (or while signing out).
MFA_EXEMPT_PREFIXES = ("/accounts/", "/static/")


class TenantAccessMiddleware:
    """Refuses tenant hosts of suspended tenants and of other regions; enforces tenant MFA, and
    MFA for operators on the admin site (OPERATOR_MFA_REQUIRED)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        tenant: Tenant = request.tenant  # type: ignore[attr-defined]
        if tenant.schema_name == settings.PUBLIC_SCHEMA_NAME:
            user = request.user
            if (
                settings.OPERATOR_MFA_REQUIRED
                and request.path.startswith("/admin/")
                and user.is_authenticated
                and user.is_staff
                and not _has_totp(user)
            ):
                return redirect(reverse("mfa_activate_totp"))
            return self.get_response(request)
        if tenant.region != settings.REGION:
            return render(
                request,
                "tenants/unavailable.html",
                {"reason": "region", "region": tenant.get_region_display()},
                status=421,
            )
        if not tenant.is_active:
            return render(request, "tenants/unavailable.html", {"reason": "suspended"}, status=403)
        user = request.user
        if (
            tenant.require_mfa_for_admins
            and user.is_authenticated
            and user.is_admin
            and not request.path.startswith(MFA_EXEMPT_PREFIXES)
            and not _has_totp(user)
        ):
            return redirect(reverse("mfa_activate_totp"))
        return self.get_response(request)


def _has_totp(user: object) -> bool:
    from allauth.mfa.models import Authenticator

    return Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
