"""Insight pages and the REST API on tenant hosts (included from tokenscope/urls_tenant.py)."""

from django.urls import include, path

from audit import views

urlpatterns = [
    path("usage/", views.usage_log, name="usage_log"),
    path("usage/export/", views.usage_export, name="usage_export"),
    path("usage/prompt-visibility/", views.prompt_visibility, name="prompt_visibility"),
    path("usage/<uuid:record_id>/", views.usage_record, name="usage_record"),
    path("reports/chargeback/", views.chargeback, name="chargeback"),
    path("audit-log/", views.audit_log, name="audit_log"),
    path("audit-log/export/", views.audit_export, name="audit_export"),
    path("exports/", views.exports, name="exports"),
    path("exports/new/", views.export_request, name="export_request"),
    path("exports/<uuid:export_id>/download/", views.export_download, name="export_download"),
    path("settings/api-tokens/", views.api_tokens, name="api_tokens"),
    path(
        "settings/api-tokens/<int:token_id>/revoke/",
        views.api_token_revoke,
        name="api_token_revoke",
    ),
    path("", include("audit.urls_api")),
]
