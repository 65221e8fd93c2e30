"""Operator admin for workspace objects. Read-only; never shows key material.

These models live in tenant schemas: the admin on the public host cannot list them, so the
ModelAdmins hide themselves there and only work where the admin runs inside a tenant schema.
"""

from typing import Any

from django.contrib import admin
from django.db import connection
from django.http import HttpRequest

from proxy.models import AnthropicCredential, CostCenter, Project, ProxyKey


class TenantSchemaReadOnlyAdmin(admin.ModelAdmin):
    def _in_tenant_schema(self) -> bool:
        return connection.schema_name != "public"  # type: ignore[attr-defined]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._in_tenant_schema() and super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._in_tenant_schema() and super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(CostCenter)
class CostCenterAdmin(TenantSchemaReadOnlyAdmin):
    list_display = ["code", "name", "owner_email", "archived_at", "created_at"]
    search_fields = ["code", "name"]


@admin.register(Project)
class ProjectAdmin(TenantSchemaReadOnlyAdmin):
    list_display = ["name", "default_cost_center", "archived_at", "created_at"]
    search_fields = ["name"]


@admin.register(AnthropicCredential)
class AnthropicCredentialAdmin(TenantSchemaReadOnlyAdmin):
    list_display = ["id", "project", "hint", "kek_id", "created_at", "rotated_at"]
    # The encrypted columns are not even shown: they are useless without the KEK.
    readonly_fields = [
        "id",
        "project",
        "purpose",
        "hint",
        "enc_version",
        "alg",
        "kek_id",
        "wrap_alg",
        "created_by",
        "created_at",
        "rotated_at",
    ]
    fields = tuple(readonly_fields)


@admin.register(ProxyKey)
class ProxyKeyAdmin(TenantSchemaReadOnlyAdmin):
    list_display = ["prefix", "name", "project", "cost_center", "owner", "created_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "prefix"]
    exclude = ["key_hash"]
