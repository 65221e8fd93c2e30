import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from accounts.models import Role, User
from audit.exports import export_path
from audit.models import ExportJob
from audit.tasks import export_run
from audit.tests.insight_factory import record, workspace, write
from conftest import PASSWORD, in_tenant, run_committed
from tenants.checks import check_tenant_schemas
from tenants.models import Tenant
from tenants.services import tenant_create
from tenants.tasks import tenant_heartbeat
from tokenscope.celery import app


@pytest.mark.django_db
def test_the_schema_check_passes_when_every_tenant_table_exists(tenant_a, tenant_b):
    assert [problem.id for problem in check_tenant_schemas()] == []


@pytest.mark.django_db
def test_the_schema_check_catches_a_missing_tenant_table(tenant_a):
    with connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE "{tenant_a.schema_name}"."audit_auditevent"')

    problems = check_tenant_schemas()

    assert [problem.id for problem in problems] == ["tokenscope.E011"]
    assert tenant_a.schema_name in problems[0].msg
    assert "audit_auditevent" in problems[0].msg


@pytest.mark.django_db
def test_the_schema_check_warns_about_zombie_tables_of_shared_apps(tenant_b):
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE TABLE "{tenant_b.schema_name}"."tenants_plan" (id int)')

    problems = check_tenant_schemas()

    assert [problem.id for problem in problems] == ["tokenscope.W012"]
    assert "tenants_plan" in problems[0].msg


@pytest.mark.django_db
def test_tenant_add_prints_one_json_object():
    out = StringIO()

    call_command(
        "tenant_add",
        "--slug",
        "cli-co",
        "--name",
        "CLI Co",
        "--owner-email",
        "Boss@CLI.example.com",
        "--owner-password",
        "a-very-long-password-1",
        "--plan",
        "startup",
        "--json",
        stdout=out,
    )

    result = json.loads(out.getvalue())
    tenant = Tenant.objects.get(slug="cli-co")
    assert result == {
        "id": tenant.short_id,
        "slug": "cli-co",
        "schema": "t_cli_co",
        "host": "cli-co.localhost",
    }
    assert tenant.plan.slug == "startup"
    with in_tenant(tenant):
        assert User.objects.get(email="boss@cli.example.com").role == Role.OWNER


@pytest.mark.django_db
def test_tenant_add_refuses_a_taken_slug(tenant_a):
    with pytest.raises(Exception, match="already taken"):
        call_command(
            "tenant_add",
            "--slug",
            tenant_a.slug,
            "--name",
            "Copy",
            "--owner-email",
            "x@example.com",
            "--owner-password",
            "a-very-long-password-1",
            "--json",
        )


def test_the_heartbeat_runs_in_each_tenant_schema(tenants_ab, django_db_blocker):
    with django_db_blocker.unblock(), start_worker(app, perform_ping_check=False, pool="solo"):
        for tenant in tenants_ab.values():
            with in_tenant(tenant):
                tenant_heartbeat.delay()
        seen = {}
        for _ in range(100):
            for tenant in tenants_ab.values():
                with in_tenant(tenant):
                    seen[tenant.slug] = cache.get("heartbeat")
            if all(seen.values()):
                break
            import time

            time.sleep(0.1)
    assert all(seen.values()), seen
    with in_tenant(tenants_ab["a"]):
        cache.delete("heartbeat")
    assert cache.get("heartbeat") is None


def test_start_up_stops_with_a_clear_message_without_a_secret_key_in_production():
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SECRET_KEY", "DEBUG")}
    env["DEBUG"] = "0"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, os; "
            "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'tokenscope.settings'); "
            "django.setup()",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_beat_sends_public_jobs_once_and_tenant_jobs_to_every_tenant(tenants_ab, django_db_blocker):
    import redis as redis_lib
    from django.conf import settings

    from tokenscope.beat import Scheduler

    broker = redis_lib.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete("celery")
    schedule = {
        "global": {
            "task": "tenants.tasks.tenant_heartbeat",
            "schedule": 60.0,
            "tenant_schemas": ["public"],
        },
        "each": {"task": "tenants.tasks.tenant_heartbeat", "schedule": 60.0},
    }
    scheduler = Scheduler(app=app, lazy=True)
    with django_db_blocker.unblock():
        for name, options in scheduler._tenant_aware_beat_schedule_to_dict(schedule).items():
            scheduler.apply_entry(scheduler.Entry(name=name, app=app, **options))
        customers = Tenant.objects.customers().count()

    sent = [json.loads(raw)["headers"] for raw in broker.lrange("celery", 0, -1)]
    broker.delete("celery")
    schemas = sorted(headers.get("_schema_name") or "" for headers in sent)
    assert schemas.count("public") == 1
    assert len(schemas) == 1 + customers
    assert {"t_tenant_a", "t_tenant_b"} <= set(schemas)


# A Celery worker killed in the middle of a task: the task is delivered again (acks_late) and
# its effect happens once.
ROWS = 30_000


def _worker(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tokenscope",
            "worker",
            "--pool",
            "solo",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "warning",
        ],
        env=env,
        cwd=Path(settings.BASE_DIR),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _status(tenant: Tenant, job_id: object) -> str:
    with in_tenant(tenant):
        return ExportJob.objects.get(pk=job_id).status


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def _export_fixture() -> tuple[Tenant, ExportJob]:
    tenant = Tenant.objects.filter(slug="worker-fault").first() or tenant_create(
        name="Worker fault",
        slug="worker-fault",
        owner_email="owner@worker-fault.example.com",
        owner_password=PASSWORD,
        owner_email_verified=True,
    )
    _, _, key = workspace(tenant, "W")
    now = timezone.now()
    write(tenant, [record(key, at=now - timedelta(seconds=i + 60)) for i in range(ROWS)])
    with in_tenant(tenant):
        owner = User.objects.get(role=Role.OWNER)
        job = ExportJob.objects.create(
            kind="usage", format="csv", filters={"proxy_key": str(key.pk)}, created_by=owner
        )
    return tenant, job


@pytest.mark.django_db
def test_a_task_whose_worker_is_killed_runs_again_and_has_its_effect_once():
    tenant, job = run_committed(_export_fixture)
    database = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST'] or '127.0.0.1'}:"
        f"{database['PORT'] or 5432}/{database['NAME']}",
        "TOKENSCOPE_TESTING": "1",
        "CELERY_VISIBILITY_TIMEOUT": "3",
        "DJANGO_SETTINGS_MODULE": "tokenscope.settings",
    }
    first = _worker(env)
    try:
        with in_tenant(tenant):
            export_run.delay(str(job.pk))
        started = _wait_for(lambda: _status(tenant, job.pk) == ExportJob.Status.RUNNING, 60)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert started, "the first worker never started the export"
        assert _status(tenant, job.pk) == ExportJob.Status.RUNNING  # killed mid-task

        second = _worker(env)
        try:
            done = _wait_for(lambda: _status(tenant, job.pk) == ExportJob.Status.DONE, 90)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(20)
    finally:
        if first.poll() is None:
            first.kill()
    assert done, "the task was not delivered again after its worker died"
    with in_tenant(tenant):
        job.refresh_from_db()
        path = export_path(job)
    assert job.row_count == ROWS
    assert path.read_bytes().count(b"\n") == ROWS + 1  # the header and every row, once
    assert not path.with_suffix(".part").exists()
