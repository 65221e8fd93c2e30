"""Insight benchmark: seed millions of usage records in one tenant, then time the pages.

    # once: a database of its own (the bench never touches the test or dev databases)
    createdb -h 127.0.0.1 -U postgres ts_bench
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/ts_bench TOKENSCOPE_TESTING=1
    .venv/bin/python manage.py migrate_schemas --shared
    .venv/bin/python bench/insight_bench.py seed --rows 10000000     # INSERT … SELECT
    .venv/bin/python bench/insight_bench.py measure                  # prints the figures

`seed` creates tenant "bench-insight" with 10 cost centers, 20 projects and 50 proxy keys,
drops the usage table's secondary indexes, inserts the rows with INSERT … SELECT
generate_series in chunks (times spread evenly over the last 90 days, in time order like real
appends), rebuilds the indexes and then the hourly rollups from the raw rows
(`audit.rollups.rollup_rebuild`). `measure` drives the real views through Django's test client
on the tenant host (same process; no network), 30 runs each, and prints p50/p95; the CSV export
is consumed chunk by chunk and its rows/s and the process's peak RSS are reported.
"""

import argparse
import os
import resource
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenscope.settings")
os.environ.setdefault("TOKENSCOPE_TESTING", "1")

import django

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402
from django_tenants.utils import schema_context  # noqa: E402

SLUG = "bench-insight"
PASSWORD = "bench-password-123456"  # noqa: S105
DAYS = 90
MODELS = ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-5"]
RATES_IN = [3, 1, 5]
RATES_OUT = [15, 5, 25]
CATEGORIES = ["coding", "summarization", "translation", "analysis", "writing", "support"]
SENSITIVITIES = ["public", "internal", "confidential", "restricted"]
TOPICS = ["invoices", "kubernetes", "quarterly report", "customer email", "SQL query", "poem"]


def tenant():
    from tenants.models import Tenant
    from tenants.services import tenant_create

    return Tenant.objects.filter(slug=SLUG).first() or tenant_create(
        name="Bench Insight",
        slug=SLUG,
        owner_email=f"owner@{SLUG}.example.com",
        owner_password=PASSWORD,
        owner_email_verified=True,
    )


def workspace(t):
    from proxy.models import CostCenter, Project, ProxyKey
    from proxy.services import cost_center_create, project_create, proxy_key_create

    with schema_context(t.schema_name):
        if ProxyKey.objects.count() >= 50:
            return list(ProxyKey.objects.values_list("id", "project_id", "cost_center_id"))
        centers = [
            CostCenter.objects.filter(code=f"CC{i}").first()
            or cost_center_create(None, tenant=t, code=f"CC{i}", name=f"Center {i}")
            for i in range(10)
        ]
        projects = [
            Project.objects.filter(name=f"Project {i}").first()
            or project_create(None, tenant=t, name=f"Project {i}")
            for i in range(20)
        ]
        for i in range(50):
            proxy_key_create(
                None, tenant=t, project=projects[i % 20], cost_center=centers[i % 10], name=f"k{i}"
            )
        return list(ProxyKey.objects.values_list("id", "project_id", "cost_center_id"))


INSERT = """
INSERT INTO audit_usagerecord (
  id, created_at, finished_at, kind, endpoint, model, is_stream, status_code, error_type,
  stop_reason, input_tokens, output_tokens, cache_creation_input_tokens,
  cache_creation_5m_input_tokens, cache_creation_1h_input_tokens, cache_read_input_tokens,
  thinking_tokens, web_search_requests, web_fetch_requests, service_tier, inference_geo, speed,
  usage_raw, cost_usd, cost_breakdown, price_book_version, is_priced, previous_costs, batch_id,
  custom_id, ip_address, user_agent, latency_ms, upstream_ms, ttfb_ms, overhead_ms,
  upstream_request_id, client_disconnected, prompt_text, prompt_sha256, category,
  relevance_score, sensitivity, detectors, flagged_for_review, cost_center_id, key_owner_id,
  project_id, proxy_key_id)
SELECT gen_random_uuid(), ts, ts + interval '2 seconds', 'messages', '/v1/messages',
  (%(models)s::text[])[mi + 1], false, st, '', 'end_turn', inp, outp, cw, cw, 0, cr, 0, 0, 0,
  'standard', '', '', '{}'::jsonb,
  CASE WHEN st = 200 THEN cin + cout + ccr + ccw ELSE 0 END,
  CASE WHEN st = 200 THEN jsonb_build_object(
    'total_usd', (cin + cout + ccr + ccw)::text, 'input_usd', cin::text,
    'output_usd', cout::text, 'cache_read_usd', ccr::text, 'cache_write_5m_usd', ccw::text,
    'cache_write_1h_usd', '0', 'price_book_version', 'bench') ELSE '{}'::jsonb END,
  'bench', true, '[]'::jsonb, '', '', '10.1.2.3'::inet, 'bench/1.0', lat, lat * 0.93,
  lat * 0.2, 1.1, 'req_' || g, false,
  'Please help with the ' || (%(topics)s::text[])[(g %% 6) + 1] || ' number ' || g,
  md5(g::text) || md5((g + 1)::text), (%(categories)s::text[])[(g * 7 %% 6) + 1],
  CASE WHEN g %% 9 = 0 THEN NULL ELSE ((g * 31) %% 100) / 100.0 END,
  (%(sensitivities)s::text[])[(g * 5 %% 4) + 1], '[]'::jsonb, false,
  (%(centers)s::bigint[])[ki + 1], NULL, (%(projects)s::bigint[])[ki + 1],
  (%(keys)s::uuid[])[ki + 1]
FROM (
  SELECT g, ts, mi, ki, st, inp, outp, cr, cw, lat,
    (inp * (%(rin)s::numeric[])[mi + 1] / 1000000)::numeric(24, 12) AS cin,
    (outp * (%(rout)s::numeric[])[mi + 1] / 1000000)::numeric(24, 12) AS cout,
    (cr * (%(rin)s::numeric[])[mi + 1] * 0.1 / 1000000)::numeric(24, 12) AS ccr,
    (cw * (%(rin)s::numeric[])[mi + 1] * 1.25 / 1000000)::numeric(24, 12) AS ccw
  FROM (
    SELECT g,
      %(start)s::timestamptz + (g::float8 / %(total)s) * interval '%(days)s days' AS ts,
      CASE WHEN g %% 10 < 6 THEN 0 WHEN g %% 10 < 9 THEN 1 ELSE 2 END AS mi,
      (g * 7) %% %(nkeys)s AS ki,
      CASE WHEN g %% 50 = 0 THEN 429 WHEN g %% 211 = 0 THEN 500 ELSE 200 END AS st,
      100 + (g * 37) %% 3000 AS inp, 20 + (g * 13) %% 800 AS outp,
      CASE WHEN g %% 3 = 0 THEN (g * 17) %% 5000 ELSE 0 END AS cr,
      CASE WHEN g %% 10 = 0 THEN 1024 ELSE 0 END AS cw,
      200 + (g * 11) %% 2000 AS lat
    FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) g
  ) a
) b
"""


def seed(rows: int, chunk: int) -> None:
    from audit.rollups import rollup_rebuild

    t = tenant()
    keys = workspace(t)
    start = timezone.now() - timedelta(days=DAYS)
    params = {
        "models": MODELS,
        "topics": TOPICS,
        "categories": CATEGORIES,
        "sensitivities": SENSITIVITIES,
        "rin": RATES_IN,
        "rout": RATES_OUT,
        "keys": [k[0] for k in keys],
        "projects": [k[1] for k in keys],
        "centers": [k[2] for k in keys],
        "nkeys": len(keys),
        "start": start,
        "total": rows,
        "days": DAYS,
    }
    began = time.perf_counter()
    with schema_context(t.schema_name), connection.cursor() as cursor:
        cursor.execute("TRUNCATE audit_usagerecord, audit_usagerollup, audit_usageclassrollup")
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s "
            "AND tablename = 'audit_usagerecord' AND indexname NOT LIKE '%%pkey'",
            [t.schema_name],
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{t.schema_name}"."{name}"')
        for lo in range(1, rows + 1, chunk):
            hi = min(rows, lo + chunk - 1)
            with transaction.atomic():
                cursor.execute(INSERT, params | {"lo": lo, "hi": hi})
            print(f"  {hi:>12,} rows  {time.perf_counter() - began:7.1f}s", flush=True)
        inserted = time.perf_counter()
        cursor.execute("SET maintenance_work_mem = '512MB'")
        for name, definition in indexes:
            cursor.execute(definition)
            print(f"  index {name}  {time.perf_counter() - began:7.1f}s", flush=True)
        cursor.execute("ANALYZE audit_usagerecord")
        indexed = time.perf_counter()
        written = rollup_rebuild(start - timedelta(hours=1), timezone.now() + timedelta(hours=1))
        cursor.execute("ANALYZE audit_usagerollup")
        cursor.execute("ANALYZE audit_usageclassrollup")
    done = time.perf_counter()
    print(
        f"seeded {rows:,} records: insert {inserted - began:.0f}s, indexes "
        f"{indexed - inserted:.0f}s, rollups {done - indexed:.0f}s ({written:,} rollup rows), "
        f"total {done - began:.0f}s"
    )


def timed(client: Client, url: str, runs: int, **extra) -> list[float]:
    client.get(url, **extra)  # warm-up (first request of a process, cold caches)
    out = []
    for _ in range(runs):
        began = time.perf_counter()
        response = client.get(url, **extra)
        if response.streaming:
            for _chunk in response.streaming_content:
                pass
        out.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return out


def detail(url: str, values: list[float]) -> list[float]:
    print(f"    {url[:60]:<60} p50 {statistics.median(values):7.1f}  max {max(values):7.1f} ms")
    return values


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def report(name: str, values: list[float], target: float | None) -> None:
    verdict = "" if target is None else ("  OK" if p95(values) <= target else "  OVER TARGET")
    print(
        f"{name:<44} p50 {statistics.median(values):7.1f} ms  p95 {p95(values):7.1f} ms"
        f"  (n={len(values)}){verdict}"
    )


def measure(runs: int, export_days: int) -> None:
    from accounts.models import User
    from audit.insight import api_token_create
    from audit.models import UsageRecord
    from proxy.models import Project
    from tenants.services import tenant_host

    t = tenant()
    host = tenant_host(t)
    with schema_context(t.schema_name):
        owner = User.objects.get(email=f"owner@{SLUG}.example.com")
        project = Project.objects.order_by("id").first()
        _, token = api_token_create(None, user=owner, name="bench")
        approx = UsageRecord.objects.order_by().count()
    client = Client(HTTP_HOST=host)
    with schema_context(t.schema_name):
        client.force_login(owner)
    print(f"tenant {SLUG}: {approx:,} usage records")
    today = timezone.now().date()
    week_ago = (today - timedelta(days=7)).isoformat()
    quarter = (today - timedelta(days=DAYS)).isoformat()
    dash = []
    for url in (
        "/",
        "/?grain=week",
        f"/?grain=month&since={quarter}",
        f"/?project={project.pk}",
    ):
        dash += detail(url, timed(client, url, runs // 4 + 1))
    report("dashboard page (30-90 days, 4 variants)", dash, 300)
    lists = []
    for url in (
        "/usage/",
        f"/usage/?project={project.pk}&status=error",
        "/usage/?model=claude-opus-4-5&category=analysis",
        f"/usage/?sensitivity=restricted&relevance_min=0.9&since={week_ago}",
    ):
        lists += detail(url, timed(client, url, runs // 4 + 1))
    report("filtered usage list (4 filters)", lists, 300)
    worst = timed(client, "/usage/?model=claude-opus-4-5&category=coding", 3)
    report("no-match filter (scans every row of a model)", worst, None)
    search = timed(client, f"/usage/?q=kubernetes%20number%2012345&since={week_ago}", 5)
    report("prompt search, 7 days, rare term (ILIKE)", search, None)
    api = Client(HTTP_HOST=host, HTTP_AUTHORIZATION=f"Bearer {token}")
    summary = []
    for url in (
        "/api/v1/usage/summary/?group_by=day,model",
        f"/api/v1/usage/summary/?group_by=project&since={quarter}",
        "/api/v1/usage/summary/?group_by=week,category",
        "/api/v1/usage/summary/?group_by=cost_center,model",
    ):
        summary += detail(url, timed(api, url, runs // 4 + 1))
    report("API summary (4 group_by variants)", summary, 200)

    since = (today - timedelta(days=export_days)).isoformat()
    with schema_context(t.schema_name):
        rows = UsageRecord.objects.filter(created_at__gte=since).count()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    began = time.perf_counter()
    response = client.get(f"/usage/export/?format=csv&since={since}")
    size = 0
    for chunk in response.streaming_content:
        size += len(chunk)
    elapsed = time.perf_counter() - began
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"CSV export: {rows:,} rows, {size / 1e6:.0f} MB in {elapsed:.1f}s = "
        f"{rows / elapsed:,.0f} rows/s; peak RSS {rss_after:.0f} MB "
        f"(before the export {rss_before:.0f} MB)"
        + ("  OK" if rows / elapsed >= 50000 and rss_after < 200 else "  OVER TARGET")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("seed")
    s.add_argument("--rows", type=int, default=10_000_000)
    s.add_argument("--chunk", type=int, default=500_000)
    m = sub.add_parser("measure")
    m.add_argument("--runs", type=int, default=40)
    m.add_argument("--export-days", type=int, default=9, help="Export the last N days.")
    args = parser.parse_args()
    if args.command == "seed":
        seed(args.rows, args.chunk)
    else:
        measure(args.runs, args.export_days)


if __name__ == "__main__":
    main()
