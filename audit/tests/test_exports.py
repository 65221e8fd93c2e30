"""Exports: streamed downloads and background files equal the API's data; all are audited."""

import csv
import io
import json
from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from accounts.models import Role
from audit import exports
from audit.models import AuditEvent, ExportJob
from audit.tasks import export_run
from audit.tests.insight_factory import record, workspace, write
from audit.tests.test_api import api
from conftest import in_tenant, make_user, owner_of, tenant_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def usage(tenant_a):
    _, _, key = workspace(tenant_a)
    now = timezone.now().replace(microsecond=0)  # the first row: a whole second
    records = [
        record(
            key,
            at=now - timedelta(minutes=i, microseconds=7 * i),
            category="coding" if i % 2 else "",
            relevance_score=i / 10,
            prompt=f'Prompt "{i}", with, commas\nand lines',
        )
        for i in range(7)
    ]
    return write(tenant_a, records)


@pytest.fixture
def export_dir(settings, tmp_path):
    settings.EXPORT_DIR = tmp_path
    return tmp_path


def _api_rows(tenant, **params):
    return api(tenant).get("/api/v1/usage/", {"limit": 1000, **params}).json()["results"]


def _stream(response) -> str:
    assert response.streaming
    return b"".join(response.streaming_content).decode()


def test_jsonl_download_equals_the_api_rows(tenant_a, usage):
    client = tenant_client(tenant_a, owner_of(tenant_a))
    body = _stream(client.get("/usage/export/", {"format": "jsonl", "category": "coding"}))
    rows = [json.loads(line) for line in body.splitlines()]
    assert rows == _api_rows(tenant_a, category="coding")
    assert len(rows) == 3


def test_csv_download_equals_the_api_rows(tenant_a, usage):
    client = tenant_client(tenant_a, make_user(tenant_a, Role.VIEWER))
    response = client.get("/usage/export/", {"format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment;")
    rows = list(csv.DictReader(io.StringIO(_stream(response))))
    expected = [
        {k: "" if v is None else str(v) for k, v in row.items()} for row in _api_rows(tenant_a)
    ]
    assert rows == expected


def test_downloads_stream_in_chunks(tenant_a, usage, monkeypatch):
    monkeypatch.setattr(exports, "CHUNK", 2)
    client = tenant_client(tenant_a, owner_of(tenant_a))
    chunks = list(client.get("/usage/export/", {"format": "csv"}).streaming_content)
    assert len(chunks) >= 4


def test_every_export_is_audited(tenant_a, usage):
    client = tenant_client(tenant_a, owner_of(tenant_a))
    _stream(client.get("/usage/export/", {"format": "csv", "model": "claude-sonnet-4-5"}))
    _stream(client.get("/audit-log/export/", {"format": "jsonl"}))
    with in_tenant(tenant_a):
        events = AuditEvent.objects.filter(action="export.created")
        assert {e.object_type for e in events} == {"usage_export", "audit_export"}
        usage_event = events.get(object_type="usage_export")
        assert usage_event.changes["filters"] == {"model": "claude-sonnet-4-5"}


def test_audit_log_export_is_for_admins_only(tenant_a):
    for role in (Role.VIEWER, Role.MEMBER):
        response = tenant_client(tenant_a, make_user(tenant_a, role)).get("/audit-log/export/")
        assert response.status_code == 403
    rows = _stream(tenant_client(tenant_a, owner_of(tenant_a)).get("/audit-log/export/"))
    assert rows.splitlines()[0].startswith("id,created_at,actor_email,action")


def test_prompt_text_is_left_out_of_viewer_exports_when_hidden(tenant_a, usage):
    owner = tenant_client(tenant_a, owner_of(tenant_a))
    owner.post("/usage/prompt-visibility/", {"hide_prompts_from_viewers": "on"})
    viewer = tenant_client(tenant_a, make_user(tenant_a, Role.VIEWER))
    body = _stream(viewer.get("/usage/export/", {"format": "jsonl"}))
    assert all(json.loads(line)["prompt_text"] is None for line in body.splitlines())


def test_background_export_writes_a_file_emails_a_link_and_needs_a_login(
    tenant_a, usage, export_dir
):
    member = make_user(tenant_a, Role.MEMBER)
    response = api(tenant_a, member, scope="write").post(
        "/api/v1/exports/",
        {"kind": "usage", "format": "jsonl", "filters": {"category": "coding"}},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    job_id = response.json()["id"]
    with in_tenant(tenant_a):
        assert export_run(job_id) == "done"
        job = ExportJob.objects.get(pk=job_id)
    assert job.row_count == 3
    assert len(mail.outbox) == 1
    assert f"/exports/{job_id}/download/" in mail.outbox[0].body
    url = f"/exports/{job_id}/download/"
    downloaded = b"".join(tenant_client(tenant_a, member).get(url).streaming_content).decode()
    rows = [json.loads(line) for line in downloaded.splitlines()]
    assert rows == _api_rows(tenant_a, category="coding")
    assert tenant_client(tenant_a).get(url).status_code == 302
    other_member = make_user(tenant_a, Role.MEMBER)
    assert tenant_client(tenant_a, other_member).get(url).status_code == 404
    assert tenant_client(tenant_a, owner_of(tenant_a)).get(url).status_code == 200
    with in_tenant(tenant_a):
        ExportJob.objects.filter(pk=job_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert tenant_client(tenant_a, member).get(url).status_code == 410


def test_background_export_of_another_tenant_is_not_found(tenant_a, tenant_b, usage, export_dir):
    client = tenant_client(tenant_a, owner_of(tenant_a))
    response = client.post("/exports/new/", {"kind": "usage", "format": "csv"})
    assert response.status_code == 302
    with in_tenant(tenant_a):
        job = ExportJob.objects.latest("created_at")
        export_run(str(job.pk))
    other = tenant_client(tenant_b, owner_of(tenant_b))
    assert other.get(f"/exports/{job.pk}/download/").status_code == 404
    assert api(tenant_b).get(f"/api/v1/exports/{job.pk}/").status_code == 404


def test_viewers_cannot_queue_background_exports(tenant_a):
    viewer = tenant_client(tenant_a, make_user(tenant_a, Role.VIEWER))
    assert viewer.post("/exports/new/", {"kind": "usage", "format": "csv"}).status_code == 403


def test_usage_export_command_prints_the_api_rows(tenant_a, usage, capsys):
    call_command("usage_export", "--tenant", tenant_a.slug, "--format", "json")
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(rows, key=lambda r: r["id"]) == sorted(_api_rows(tenant_a), key=lambda r: r["id"])
    since = (timezone.now() - timedelta(minutes=2, seconds=30)).isoformat()
    call_command("usage_export", "--tenant", tenant_a.slug, "--format", "csv", "--since", since)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("id,created_at,model,")
    assert len(list(csv.reader(io.StringIO("\n".join(lines))))) == 1 + 3
