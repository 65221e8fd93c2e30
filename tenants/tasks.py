import logging

from celery import shared_task
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

logger = logging.getLogger(__name__)

HEARTBEAT_TTL = 3600


@shared_task(bind=True)
def tenant_heartbeat(self: object) -> str:
    """Prove that tasks run in each tenant's schema: record the schema the task ran in."""
    schema: str = connection.schema_name  # type: ignore[attr-defined]
    # The cache key function prefixes the current schema, so each tenant gets its own entry.
    cache.set("heartbeat", timezone.now().isoformat(), HEARTBEAT_TTL)
    logger.info("heartbeat schema=%s", schema)
    return schema
