import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from audit.models import AuditEvent
from conftest import in_tenant


@pytest.mark.django_db
def test_the_retention_command_purges_one_tenant_and_prints_json(tenant_a):
    with in_tenant(tenant_a):
        event = AuditEvent.objects.create(action="old", object_type="thing")
        AuditEvent.objects.filter(pk=event.pk).update(
            created_at=timezone.now() - timedelta(days=400)
        )
    out = StringIO()

    call_command("privacy_run", "retention", "--tenant", "tenant-a", "--json", stdout=out)

    result = json.loads(out.getvalue())
    assert result["deleted"]["tenant-a"]["audit.AuditEvent"] >= 1


@pytest.mark.django_db
def test_the_retention_command_refuses_an_unknown_tenant(tenant_a):
    with pytest.raises(CommandError, match="No active tenant"):
        call_command("privacy_run", "retention", "--tenant", "nope", stdout=StringIO())


@pytest.mark.django_db
def test_the_deletions_command_is_a_no_op_without_due_deletions():
    out = StringIO()

    call_command("privacy_run", "deletions", "--json", stdout=out)

    assert json.loads(out.getvalue()) == {"purged_tenants": 0}
