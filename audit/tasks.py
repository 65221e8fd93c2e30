"""Insight jobs: background exports (tenant-aware Celery: they run in the sender's schema)."""

from datetime import timedelta
from pathlib import Path

from celery import shared_task
from django.db import connection
from django.utils import timezone

from audit.exports import export_dir, export_write
from audit.models import ExportJob
from audit.rollups import rollup_rebuild


@shared_task(acks_late=True)
def export_run(export_id: str) -> str:
    job = ExportJob.objects.filter(pk=export_id).select_related("created_by").first()
    if job is None:
        return "missing"
    return export_write(job).status


@shared_task
def exports_files_cleanup() -> int:
    """Delete this schema's export files whose job expired or is gone."""
    directory = Path(export_dir()) / connection.schema_name  # type: ignore[attr-defined]
    if not directory.exists():
        return 0
    live = {
        str(pk)
        for pk in ExportJob.objects.filter(expires_at__gt=timezone.now()).values_list(
            "pk", flat=True
        )
    }
    removed = 0
    for path in directory.iterdir():
        if path.stem not in live:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


@shared_task
def rollups_rebuild_recent(hours: int = 3) -> int:
    """Recompute the last hours' rollups (picks up records written from the disk spool)."""
    now = timezone.now()
    return rollup_rebuild(now - timedelta(hours=hours), now)
