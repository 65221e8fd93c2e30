"""The Celery app: tenant-aware, so a task runs in the schema of the tenant that sent it."""

import os

from tenant_schemas_celery.app import CeleryApp as TenantAwareCeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenscope.settings")

app = TenantAwareCeleryApp("tokenscope")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
