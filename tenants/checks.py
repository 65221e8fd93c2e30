"""System checks for tenancy: every tenant schema holds every tenant app's tables."""

from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import Error, Warning, register
from django.db import DatabaseError, connection


def _tenant_app_tables() -> set[str]:
    tenant_labels = {app.rsplit(".", 1)[-1] for app in settings.TENANT_APPS}
    tables = set()
    for model in apps.get_models(include_auto_created=True):
        if model._meta.app_label in tenant_labels and model._meta.managed:
            tables.add(model._meta.db_table)
    return tables


def _shared_only_tables() -> set[str]:
    tenant_labels = {app.rsplit(".", 1)[-1] for app in settings.TENANT_APPS}
    return {
        model._meta.db_table
        for model in apps.get_models(include_auto_created=True)
        if model._meta.app_label not in tenant_labels and model._meta.managed
    }


def schema_table_problems() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Per tenant schema: the tenant tables it lacks, and the shared-only tables it still has."""
    from tenants.models import Tenant

    expected = _tenant_app_tables()
    shared_only = _shared_only_tables()
    schemas = list(Tenant.objects.customers().values_list("schema_name", flat=True))
    missing: dict[str, set[str]] = {}
    zombies: dict[str, set[str]] = {}
    if not schemas:
        return missing, zombies
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema = ANY(%s)",
            [schemas],
        )
        present: dict[str, set[str]] = {schema: set() for schema in schemas}
        for schema, table in cursor.fetchall():
            present[schema].add(table)
    for schema, tables in present.items():
        if expected - tables:
            missing[schema] = expected - tables
        if shared_only & tables:
            zombies[schema] = shared_only & tables
    return missing, zombies


@register("tenancy", deploy=True)
def check_tenant_schemas(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    try:
        missing, zombies = schema_table_problems()
    except DatabaseError as exc:
        return [Error(f"Could not inspect tenant schemas: {exc}", id="tokenscope.E010")]
    problems: list[Any] = [
        Error(
            f"Tenant schema {schema!r} lacks tables of tenant apps: {', '.join(sorted(tables))}.",
            hint="Run `manage.py migrate_schemas`; if an app moved between SHARED_APPS and "
            "TENANT_APPS, write a migration that creates its tables in every tenant schema.",
            id="tokenscope.E011",
        )
        for schema, tables in sorted(missing.items())
    ]
    problems += [
        Warning(
            f"Tenant schema {schema!r} holds tables of shared-only apps (zombie tables): "
            f"{', '.join(sorted(tables))}.",
            hint="Nothing reads them; drop them once their data is migrated.",
            id="tokenscope.W012",
        )
        for schema, tables in sorted(zombies.items())
    ]
    return problems
