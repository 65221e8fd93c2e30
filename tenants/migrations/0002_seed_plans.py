from django.db import migrations

PLANS = [
    # slug, name, retention days, members, proxy keys, monthly requests, residency, order
    ("free", "Free", 30, 3, 5, 10_000, False, 0),
    ("startup", "Startup", 90, 10, 25, 500_000, False, 1),
    ("team", "Team", 365, 50, 200, 5_000_000, False, 2),
    ("business", "Business", 730, 250, 1_000, 50_000_000, False, 3),
    ("enterprise", "Enterprise", 730, None, None, None, True, 4),
]


def seed(apps, schema_editor):
    if schema_editor.connection.schema_name != "public":
        return
    Plan = apps.get_model("tenants", "Plan")
    for slug, name, days, members, keys, requests, residency, order in PLANS:
        Plan.objects.update_or_create(
            slug=slug,
            defaults={
                "name": name,
                "retention_days": days,
                "member_limit": members,
                "proxy_key_limit": keys,
                "monthly_request_limit": requests,
                "has_data_residency": residency,
                "sort_order": order,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
