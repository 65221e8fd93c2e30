"""Privacy's own registrations for models other apps own (skipped while a model is absent)."""

from typing import Any

from django.apps import apps
from django.db import connection

from privacy.adapters import register_export_source, register_user_erase
from privacy.retention import register_retention
from tenants.models import Tenant


def _model(label: str) -> Any:
    try:
        return apps.get_model(label)
    except LookupError:
        return None


def table_exists(model: Any) -> bool:
    """False while a model's migration has not run yet (in the current schema)."""
    return model is not None and model._meta.db_table in connection.introspection.table_names()


def usage_records_of(tenant: Tenant, user: Any) -> list[dict[str, Any]]:
    """Usage records attributed to the person (calls made with proxy keys they own)."""
    model = _model("audit.UsageRecord")
    if not table_exists(model):
        return []
    fields = ["id", "created_at", "model", "endpoint", "status_code", "input_tokens"]
    fields += ["output_tokens", "cost_usd", "category", "ip_address", "user_agent"]
    rows = model.objects.filter(key_owner_id=user.pk).order_by("created_at").values(*fields)
    return [{k: (str(v) if v is not None else None) for k, v in row.items()} for row in rows]


def usage_records_erase(tenant: Tenant, user_id: int) -> None:
    """Keep the metrics of the person's calls; drop their address and user agent."""
    model = _model("audit.UsageRecord")
    if not table_exists(model):
        return
    model.objects.filter(key_owner_id=user_id).update(ip_address=None, user_agent="")


def register_all() -> None:
    register_retention("audit.AuditEvent", "created_at")
    if _model("audit.UsageRecord") is not None:
        register_retention("audit.UsageRecord", "created_at")
        register_export_source("usage_records", usage_records_of)
        register_user_erase(usage_records_erase)
