"""REST API v1 URLs (included from audit/urls.py; also the schema's urlconf)."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from audit import api, views

router = SimpleRouter(trailing_slash=True)
router.register("usage", api.UsageRecordViewSet, basename="api-usage")
router.register("projects", api.ProjectViewSet, basename="api-project")
router.register("cost-centers", api.CostCenterViewSet, basename="api-cost-center")
router.register("proxy-keys", api.ProxyKeyViewSet, basename="api-proxy-key")
router.register("budgets", api.BudgetViewSet, basename="api-budget")
router.register("audit-events", api.AuditEventViewSet, basename="api-audit-event")
router.register("exports", api.ExportViewSet, basename="api-export")

urlpatterns = [
    path("api/v1/usage/", api.UsageRecordListView.as_view(), name="api-usage-list"),
    path("api/v1/usage/summary/", api.UsageSummaryView.as_view(), name="api-usage-summary"),
    path("api/v1/audit-events/", api.AuditEventListView.as_view(), name="api-audit-event-list"),
    path("api/v1/schema/", api.SchemaView.as_view(), name="api-schema"),
    path("api/v1/docs/", views.api_docs, name="api_docs"),
    path("api/v1/", include(router.urls)),
]
