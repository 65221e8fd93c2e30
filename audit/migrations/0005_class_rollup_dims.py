# One classification dimension per rollup row (dim, value); the cube is rebuilt from records.

from django.db import migrations, models


def rebuild(apps, schema_editor):
    """Refill the new cube from the raw records (cheap: only the classification columns)."""
    schema_editor.execute(
        """
        INSERT INTO audit_usageclassrollup
            (hour, project_id, cost_center_id, dim, value, requests, cost_usd)
        SELECT date_trunc('hour', u.created_at, 'UTC'), u.project_id, u.cost_center_id,
               d.dim, d.value, count(*), sum(u.cost_usd)
        FROM audit_usagerecord u
        CROSS JOIN LATERAL (VALUES
            ('category', u.category),
            ('sensitivity', u.sensitivity),
            ('relevance', CASE WHEN u.relevance_score IS NULL THEN 'none'
                 ELSE least(9, greatest(0, floor(u.relevance_score * 10)))::int::text END)
        ) AS d(dim, value)
        GROUP BY 1, 2, 3, 4, 5
        """
    )


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0004_classification"),
    ]

    operations = [
        migrations.DeleteModel(name="UsageClassRollup"),
        migrations.CreateModel(
            name="UsageClassRollup",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("hour", models.DateTimeField()),
                ("project_id", models.BigIntegerField(null=True)),
                ("cost_center_id", models.BigIntegerField(null=True)),
                ("dim", models.CharField(max_length=12)),
                ("value", models.CharField(max_length=60)),
                ("requests", models.BigIntegerField(default=0)),
                ("cost_usd", models.DecimalField(decimal_places=12, default=0, max_digits=30)),
            ],
            options={
                "indexes": [models.Index(fields=["hour"], name="usage_class_rollup_hour")],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("hour", "project_id", "cost_center_id", "dim", "value"),
                        name="usage_class_rollup_dims",
                        nulls_distinct=False,
                    )
                ],
            },
        ),
        migrations.RunPython(rebuild, migrations.RunPython.noop),
    ]
