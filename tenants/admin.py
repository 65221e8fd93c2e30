from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from privacy.forms import TenantResidencyAdminForm
from tenants.models import Domain, Plan, Tenant


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    form = TenantResidencyAdminForm  # EU/APAC residency for Enterprise tenants only
    list_display = ["name", "slug", "short_id", "plan", "status", "region", "created_at"]
    list_filter = ["status", "plan", "region", "privacy_mode"]
    search_fields = ["name", "slug", "short_id", "schema_name"]
    readonly_fields = ["schema_name", "short_id", "created_at"]

    def save_model(self, request: HttpRequest, obj: Tenant, form: Any, change: bool) -> None:
        from proxy.services import config_changed_notify

        super().save_model(request, obj, form, change)
        # Status, region or Privacy Mode may have changed: proxies drop what they cached.
        config_changed_notify(obj)

    inlines = [DomainInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tenant]:
        return Tenant.objects.customers().select_related("plan")


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ["domain", "tenant", "is_primary"]
    search_fields = ["domain", "tenant__name", "tenant__slug"]


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "slug",
        "retention_days",
        "member_limit",
        "proxy_key_limit",
        "monthly_request_limit",
        "has_data_residency",
    ]
    search_fields = ["name", "slug"]
