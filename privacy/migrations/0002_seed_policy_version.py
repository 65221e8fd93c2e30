from datetime import datetime, timezone
from pathlib import Path

from django.db import migrations

VERSION = "2026-05-14"
TEXT_FILE = Path(__file__).resolve().parent.parent / "content" / f"privacy-policy-{VERSION}.txt"


def seed(apps, schema_editor):
    if schema_editor.connection.schema_name != "public":
        return
    PolicyVersion = apps.get_model("privacy", "PolicyVersion")
    day = datetime(2026, 5, 14, tzinfo=timezone.utc)
    PolicyVersion.objects.get_or_create(
        version=VERSION,
        defaults={
            "text": TEXT_FILE.read_text(encoding="utf-8"),
            "published_at": day,
            "effective_at": day,
            "summary": "First published version.",
        },
    )


class Migration(migrations.Migration):
    dependencies = [("privacy", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
