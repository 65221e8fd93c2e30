"""Drop the usage record's single-column indexes on project, cost center and proxy key.

The (column, -created_at) indexes serve every lookup by these keys (PROTECT checks included),
and each index costs every insert its update. Django's own AlterField would also drop and
re-create the foreign keys, validating them with a lock that holds record inserts for the
length of a scan of the table; only the indexes go here.
"""

import django.db.models.deletion
from django.db import migrations, models

INDEXES = {
    "project": "audit_usagerecord_project_id_50030406",
    "cost_center": "audit_usagerecord_cost_center_id_5530aeca",
    "proxy_key": "audit_usagerecord_proxy_key_id_3ec196f6",
}
TARGETS = {
    "project": "proxy.project",
    "cost_center": "proxy.costcenter",
    "proxy_key": "proxy.proxykey",
}


def _field(name: str) -> migrations.AlterField:
    return migrations.AlterField(
        model_name="usagerecord",
        name=name,
        field=models.ForeignKey(
            db_index=False,
            null=True,
            on_delete=django.db.models.deletion.PROTECT,
            related_name="+",
            to=TARGETS[name],
        ),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0007_daily_rollup_tz_index"),
        ("proxy", "0003_budgets"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[_field(name) for name in INDEXES],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{index}"',
                    f'CREATE INDEX IF NOT EXISTS "{index}" ON "audit_usagerecord" ("{name}_id")',
                )
                for name, index in INDEXES.items()
            ],
        )
    ]
