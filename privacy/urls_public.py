"""Privacy pages of the public site (included from tokenscope/urls_public.py)."""

from django.urls import path

from privacy import views

urlpatterns = [
    path("privacy/", views.policy, name="privacy_policy"),
    path("privacy/versions/<str:version>/", views.policy_version, name="privacy_policy_version"),
    path("privacy/request/", views.request_form, name="privacy_request"),
    path(
        "privacy/request/verify/<str:token>/", views.request_verify, name="privacy_request_verify"
    ),
    path("privacy/export/<str:token>/", views.export_download, name="privacy_export_download"),
    path(
        "privacy/deletion/cancel/<str:token>/",
        views.deletion_cancel,
        name="privacy_deletion_cancel",
    ),
    path("admin/platform/", views.platform_analytics, name="privacy_platform_analytics"),
]
