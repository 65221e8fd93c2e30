"""Retention purge cost: delete N expired audit events in batches while M fresh ones stay.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test_ts_privacy \
        .venv/bin/python bench/privacy_purge.py --rows 1000000 --schema t_tenant_a

Uses an existing tenant schema (of a scratch or test database: it inserts and deletes rows).
Prints rows/s and per-batch latency (each batch is one short transaction: its duration bounds how
long the purge holds row locks and competes with the proxy's inserts).
"""

import argparse
import os
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

from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402
from django_tenants.utils import schema_context  # noqa: E402

from audit.models import AuditEvent  # noqa: E402
from privacy.retention import delete_before  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--fresh", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--schema", default="t_tenant_a")
    args = parser.parse_args()
    now = timezone.now()
    with schema_context(args.schema):
        with connection.cursor() as cursor:
            started = time.perf_counter()
            cursor.execute(
                "INSERT INTO audit_auditevent (created_at, actor_email, action, object_type,"
                " object_id, object_repr, changes) SELECT %s - make_interval(secs => g), '',"
                " 'bench.old', 'thing', '', '', '{}' FROM generate_series(1, %s) g",
                [now - timedelta(days=800), args.rows],
            )
            cursor.execute(
                "INSERT INTO audit_auditevent (created_at, actor_email, action, object_type,"
                " object_id, object_repr, changes) SELECT %s - make_interval(secs => g), '',"
                " 'bench.fresh', 'thing', '', '', '{}' FROM generate_series(1, %s) g",
                [now, args.fresh],
            )
            cursor.execute("ANALYZE audit_auditevent")
            print(f"inserted {args.rows + args.fresh} rows in {time.perf_counter() - started:.1f}s")
        batches: list[float] = []
        started = time.perf_counter()
        deleted = delete_before(
            AuditEvent,
            "created_at",
            now - timedelta(days=730),
            batch=args.batch,
            on_batch=lambda _n, seconds: batches.append(seconds),
        )
        elapsed = time.perf_counter() - started
        kept = AuditEvent.objects.filter(action="bench.fresh").count()
        AuditEvent.objects.filter(action="bench.fresh").delete()
    batches.sort()
    p99 = batches[int(len(batches) * 0.99) - 1] if len(batches) > 1 else batches[0]
    print(f"deleted {deleted} rows in {elapsed:.1f}s ({deleted / elapsed:,.0f} rows/s)")
    print(
        f"{len(batches)} batches of {args.batch}:"
        f" median {statistics.median(batches) * 1000:.0f} ms,"
        f" p99 {p99 * 1000:.0f} ms, max {batches[-1] * 1000:.0f} ms; fresh rows kept: {kept}"
    )


if __name__ == "__main__":
    main()
