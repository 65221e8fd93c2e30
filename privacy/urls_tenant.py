"""Privacy pages of a tenant's host (included from tokenscope/urls_tenant.py)."""

from django.urls import path

from privacy import views

urlpatterns = [
    path("privacy/", views.policy, name="privacy_policy"),
    path("privacy/versions/<str:version>/", views.policy_version, name="privacy_policy_version"),
    path("settings/privacy/", views.data_and_privacy, name="privacy_data"),
    path("settings/privacy/my-data/", views.my_data_download, name="privacy_my_data"),
    path("settings/retention/", views.retention_settings, name="privacy_retention"),
    path("settings/delete/", views.tenant_delete, name="privacy_tenant_delete"),
    path("settings/account/delete/", views.account_delete, name="privacy_account_delete"),
]
