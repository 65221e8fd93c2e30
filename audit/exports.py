"""Exports of usage records and audit events as CSV or JSON Lines, for any filter.

Rows are read through a server-side cursor (`.iterator(chunk_size)`) and written in chunks, so
memory stays constant whatever the size. A direct download streams them; a background export
(`export_create` + the `export_run` task) writes a file under EXPORT_DIR/<schema>/ that its
creator (or an admin) can download after signing in, for 7 days.
"""

import csv
import io
import json
import logging
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import CharField, F, Func, QuerySet, TextField
from django.db.models.functions import Cast
from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone

from accounts.models import User
from audit.models import AuditEvent, ExportJob, UsageRecord
from audit.services import audit_event_record

logger = logging.getLogger(__name__)

CHUNK = 5000

USAGE_FIELDS = (
    "id",
    "created_at",
    "model",
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_creation_5m_input_tokens",
    "cache_creation_1h_input_tokens",
    "cache_read_input_tokens",
    "web_search_requests",
    "service_tier",
    "cost_usd",
    "project",
    "cost_center",
    "proxy_key_id",
    "status_code",
    "stop_reason",
    "latency_ms",
    "overhead_ms",
    "ip_address",
    "user_agent",
    "prompt_text",
    "prompt_sha256",
    "category",
    "relevance_score",
    "sensitivity",
    "detectors",
    "flagged_for_review",
    "upstream_request_id",
)
# Database columns behind USAGE_FIELDS (project and cost center by name and code).
USAGE_COLUMNS = tuple(
    {"project": "project__name", "cost_center": "cost_center__code"}.get(name, name)
    for name in USAGE_FIELDS
)
AUDIT_FIELDS = (
    "id",
    "created_at",
    "actor_email",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "ip_address",
    "changes",
)
PROMPT_INDEX = USAGE_FIELDS.index("prompt_text")


def export_dir() -> Path:
    return Path(getattr(settings, "EXPORT_DIR", settings.BASE_DIR / ".local" / "exports"))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, Decimal):
        return f"{value:f}"
    if value is None or isinstance(value, (int, float, str, bool, dict, list)):
        return value
    return str(value)


# The four non-text columns are rendered as text by PostgreSQL, exactly as `_plain` renders
# them for the API: the export loop then only moves values along (it is the hot path).
_ISO = "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"
_SQL_TEXT: dict[str, Any] = {
    "id": Cast("id", output_field=TextField()),
    "created_at": Func(F("created_at"), template=_ISO, output_field=CharField()),
    "cost_usd": Cast("cost_usd", output_field=TextField()),
    "proxy_key_id": Cast("proxy_key_id", output_field=TextField()),
}


def usage_tuples(qs: QuerySet[UsageRecord], *, include_prompt: bool) -> Iterator[tuple]:
    """Rows in USAGE_FIELDS order, JSON-ready; prompt text null when not to be shown."""
    columns = [_SQL_TEXT.get(name, name) for name in USAGE_COLUMNS]
    rows = qs.values_list(*columns).iterator(chunk_size=CHUNK)
    if include_prompt:
        yield from rows
        return
    for row in rows:
        values = list(row)
        values[PROMPT_INDEX] = None
        yield tuple(values)


def audit_tuples(qs: QuerySet[AuditEvent]) -> Iterator[tuple]:
    for row in qs.values_list(*AUDIT_FIELDS).iterator(chunk_size=CHUNK):
        yield tuple(_plain(v) for v in row)


def usage_dict(values: tuple) -> dict[str, Any]:
    return dict(zip(USAGE_FIELDS, values, strict=True))


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return value


def encode(rows: Iterable[tuple], fields: tuple[str, ...], fmt: str) -> Iterator[bytes]:
    """CSV (with a header) or JSON Lines, in chunks of about CHUNK rows.

    CSV writes None as an empty cell; JSON columns (audit `changes`) are JSON text.
    """
    json_at = [fields.index(name) for name in ("changes",) if name in fields]
    buffer = io.StringIO()
    writer = csv.writer(buffer) if fmt == "csv" else None
    if writer is not None:
        writer.writerow(fields)
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    for count, row in enumerate(rows, 1):
        if writer is not None:
            if json_at:
                row = tuple(_csv_cell(v) if i in json_at else v for i, v in enumerate(row))
            writer.writerow(row)
        else:
            buffer.write(dumps(dict(zip(fields, row, strict=True))))
            buffer.write("\n")
        if count % CHUNK == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    tail = buffer.getvalue()
    if tail:
        yield tail.encode()


CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}


def export_rows(kind: str, qs: QuerySet[Any], *, include_prompt: bool) -> Iterator[tuple]:
    if kind == ExportJob.Kind.USAGE:
        return usage_tuples(qs, include_prompt=include_prompt)
    return audit_tuples(qs)


def export_fields(kind: str) -> tuple[str, ...]:
    return USAGE_FIELDS if kind == ExportJob.Kind.USAGE else AUDIT_FIELDS


def export_stream(
    actor: User,
    *,
    kind: str,
    fmt: str,
    qs: QuerySet[Any],
    filters: dict[str, str],
    include_prompt: bool,
    request: HttpRequest | None = None,
) -> StreamingHttpResponse:
    """A direct download streamed with constant memory; the export itself is audited."""
    audit_event_record(
        actor,
        action="export.created",
        object_type=f"{kind}_export",
        object_repr=f"{kind} {fmt} (download)",
        request=request,
        changes={"format": fmt, "filters": filters, "delivery": "download"},
    )
    body = encode(export_rows(kind, qs, include_prompt=include_prompt), export_fields(kind), fmt)
    response = StreamingHttpResponse(body, content_type=CONTENT_TYPES[fmt])
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="{kind}-{stamp}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response


def export_create(
    actor: User,
    *,
    kind: str,
    fmt: str,
    filters: dict[str, str],
    request: HttpRequest | None = None,
) -> ExportJob:
    """Queue a background export; its creator gets an email with a sign-in link when ready."""
    from audit.tasks import export_run

    with transaction.atomic():
        job = ExportJob.objects.create(kind=kind, format=fmt, filters=filters, created_by=actor)
        audit_event_record(
            actor,
            action="export.created",
            object_type="export",
            object_id=job.pk,
            object_repr=f"{kind} {fmt} (background)",
            request=request,
            changes={"format": fmt, "filters": filters, "delivery": "background"},
        )
        transaction.on_commit(lambda: export_run.delay(str(job.pk)))
    return job


def export_path(job: ExportJob) -> Path:
    return export_dir() / connection.schema_name / job.file_name  # type: ignore[attr-defined]


def export_write(job: ExportJob) -> ExportJob:
    """Write a background export's file (runs in the Celery worker, in the tenant's schema)."""
    from audit.selectors import current_tenant, export_queryset, prompt_visible

    if job.status == ExportJob.Status.DONE:
        return job
    ExportJob.objects.filter(pk=job.pk).update(status=ExportJob.Status.RUNNING)
    path = export_path(job)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    user = job.created_by
    try:
        qs = export_queryset(job.kind, job.filters)
        include_prompt = user is not None and prompt_visible(user)
        rows = export_rows(job.kind, qs, include_prompt=include_prompt)
        count = 0

        def counted() -> Iterator[tuple]:
            nonlocal count
            for row in rows:
                count += 1
                yield row

        with tmp.open("wb") as handle:
            for chunk in encode(counted(), export_fields(job.kind), job.format):
                handle.write(chunk)
        tmp.rename(path)
    except Exception as exc:
        logger.exception("export %s failed", job.pk)
        job.status = ExportJob.Status.FAILED
        job.error = type(exc).__name__
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "error", "finished_at"])
        return job
    job.status = ExportJob.Status.DONE
    job.row_count = count
    job.size_bytes = path.stat().st_size
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "row_count", "size_bytes", "finished_at"])
    if user is not None:
        from tenants.services import tenant_url

        link = tenant_url(current_tenant(), f"/exports/{job.pk}/download/")
        body = (
            f"Your {job.get_kind_display().lower()} export ({job.row_count} rows) is ready.\n\n"
            f"Download it (you will be asked to sign in): {link}\n\n"
            f"The link expires on {job.expires_at:%Y-%m-%d %H:%M} UTC.\n"
        )
        send_mail("Your TokenScope export is ready", body, None, [user.email])
    return job


def usage_record_values(record: UsageRecord, *, include_prompt: bool) -> tuple:
    """One record as a USAGE_FIELDS tuple, exactly as `usage_tuples` would produce it."""
    values: list[Any] = []
    for name in USAGE_FIELDS:
        if name == "project":
            value: Any = record.project.name if record.project_id else None  # type: ignore[union-attr]
        elif name == "cost_center":
            value = record.cost_center.code if record.cost_center_id else None  # type: ignore[union-attr]
        elif name == "prompt_text":
            value = record.prompt_text if include_prompt else None
        else:
            value = getattr(record, name)
        values.append(_plain(value))
    return tuple(values)
