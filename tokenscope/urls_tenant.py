"""URLs of a tenant's own host, <slug>.<base domain>."""

from django.urls import include, path

from accounts import views as account_views
from audit import views as audit_views
from tenants import views as tenant_views

urlpatterns = [
    path("", audit_views.dashboard, name="dashboard"),
    path("settings/", tenant_views.tenant_settings, name="tenant_settings"),
    path("team/", account_views.team, name="team"),
    path("team/invite/", account_views.team_invite, name="team_invite"),
    path("team/<int:user_id>/role/", account_views.team_member_role, name="team_member_role"),
    path("team/<int:user_id>/remove/", account_views.team_member_remove, name="team_member_remove"),
    path("team/join/<str:token>/", account_views.team_join, name="team_join"),
    path("", include("proxy.urls_tenant")),
    path("", include("proxy.budgets.urls")),
    path("", include("privacy.urls_tenant")),
    path("billing/", include("billing.urls")),
    path("", include("audit.urls")),
    path("", include("audit.classification.urls")),
    path("accounts/", include("allauth.urls")),
]
