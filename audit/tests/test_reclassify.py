"""`reclassify`: re-runs classification from stored prompts; Privacy Mode and restricted skipped."""

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from audit.classification import classify
from audit.classification.reclassify import classification_text
from audit.classification.selectors import tenant_taxonomy
from audit.classification.services import (
    classification_settings_update,
    tenant_category_create,
    tenant_category_update,
)
from audit.models import UsageClassRollup, UsageRecord
from audit.rollups import rollup_rebuild
from audit.tests.insight_factory import record, write
from conftest import in_tenant, owner_of
from privacy.models import ProcessingRestriction
from proxy.models import ProxyKey
from proxy.prompts import prompt_text
from proxy.services import cost_center_create, project_create, proxy_key_create
from tenants.models import Tenant

pytestmark = pytest.mark.django_db

CONTRACT = (
    "Review the limitation of liability clause in this supplier contract and suggest a redline"
)
TRANSLATE = "Translate into French: 'Your payslip for March is ready in the portal.'"
RECIPE = "What can I cook tonight with chickpeas, spinach and a tin of tomatoes?"
BASE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _stored(text: str) -> str:
    """The prompt as the proxy stores it with Privacy Mode off."""
    return prompt_text(
        {"system": "You help the legal team.", "messages": [{"role": "user", "content": text}]}
    )


def _key(tenant: Tenant, purpose: str = "") -> ProxyKey:
    with in_tenant(tenant):
        center = cost_center_create(None, tenant=tenant, code="RCL", name="Reclassify")
        project = project_create(
            None, tenant=tenant, name="Legal desk", purpose=purpose, default_cost_center=center
        )
        key, _ = proxy_key_create(None, tenant=tenant, project=project, cost_center=center)
    return key


def _write(tenant: Tenant, key: ProxyKey, prompts: list[str | None], **fields: Any) -> list:
    records = [
        record(
            key,
            at=BASE + timedelta(minutes=index),
            prompt=None if text is None else _stored(text),
            **{
                "category": "summarization",
                "sensitivity": "public",
                "relevance_score": 0.42,
                **fields,
            },
        )
        for index, text in enumerate(prompts)
    ]
    return write(tenant, records)


def _run(tenant: Tenant, *args: str) -> dict[str, Any]:
    out = StringIO()
    call_command("reclassify", "--tenant", tenant.slug, "--json", *args, stdout=out)
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


def _class_cube() -> dict[tuple[str, str], tuple[int, Decimal]]:
    totals: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    for row in UsageClassRollup.objects.all():
        totals[(row.dim, row.value)][0] += row.requests
        totals[(row.dim, row.value)][1] += row.cost_usd
    return {k: (v[0], v[1]) for k, v in totals.items() if v[0] != 0 or v[1] != 0}


def _add_contract_category(tenant: Tenant) -> None:
    with in_tenant(tenant):
        tenant_category_create(
            owner_of(tenant),
            key="contract_review",
            label="Contract review",
            description="Reviewing contract clauses for legal risk",
            examples=[
                "Is this limitation of liability clause acceptable for us as the supplier?",
                "Review the indemnification clause in this MSA and flag risks",
                "Does this termination clause favour the customer? Suggest a redline",
            ],
        )


def test_classification_text_drops_the_role_headers_of_stored_prompts() -> None:
    stored = prompt_text(
        {
            "system": "Be brief.",
            "messages": [
                {"role": "user", "content": "[user]\nliteral"},
                {"role": "assistant", "content": "Sure."},
            ],
        }
    )

    assert classification_text(stored) == "Be brief.\n\n[user]\nliteral\n\nSure."


def test_reclassify_applies_a_new_custom_category_to_stored_prompts(tenant_a: Tenant) -> None:
    key = _key(tenant_a)
    records = _write(tenant_a, key, [CONTRACT, RECIPE])
    _add_contract_category(tenant_a)

    result = _run(tenant_a)

    assert result == {
        "reclassified": 2,
        "changed": 2,
        "skipped_privacy_mode": 0,
        "skipped_restricted": 0,
    }
    with in_tenant(tenant_a):
        contract = UsageRecord.objects.get(pk=records[0].pk)
        recipe = UsageRecord.objects.get(pk=records[1].pk)
        expected = classify(classification_text(_stored(RECIPE)), taxonomy=tenant_taxonomy())
    assert contract.category == "contract_review"
    assert recipe.category == expected.category == "personal"
    assert recipe.sensitivity == "public"
    assert recipe.relevance_score is None  # the project has no purpose text
    assert recipe.flagged_for_review is False


def test_a_disabled_category_is_replaced_on_reclassify(tenant_a: Tenant) -> None:
    key = _key(tenant_a)
    (translated,) = _write(tenant_a, key, [TRANSLATE], category="translation")
    with in_tenant(tenant_a):
        tenant_category_update(owner_of(tenant_a), key="translation", is_enabled=False)

    _run(tenant_a)

    with in_tenant(tenant_a):
        category = UsageRecord.objects.get(pk=translated.pk).category
    assert category not in ("translation", "")


def test_privacy_mode_records_are_counted_as_skipped_and_left_untouched(tenant_a: Tenant) -> None:
    key = _key(tenant_a)
    records = _write(tenant_a, key, [None, None, CONTRACT])
    _add_contract_category(tenant_a)

    result = _run(tenant_a)

    assert result["skipped_privacy_mode"] == 2
    assert result["reclassified"] == 1
    with in_tenant(tenant_a):
        kept = UsageRecord.objects.filter(pk__in=[records[0].pk, records[1].pk])
        assert {(r.category, r.relevance_score) for r in kept} == {("summarization", 0.42)}


def test_records_of_a_key_owner_who_restricted_processing_are_skipped(tenant_a: Tenant) -> None:
    key = _key(tenant_a)
    owner = owner_of(tenant_a)
    (restricted,) = _write(tenant_a, key, [CONTRACT], key_owner_id=owner.pk)
    (free,) = _write(tenant_a, key, [RECIPE])
    ProcessingRestriction.objects.create(tenant=tenant_a, user_id=owner.pk)
    _add_contract_category(tenant_a)

    result = _run(tenant_a)

    assert result["skipped_restricted"] == 1
    assert result["reclassified"] == 1
    with in_tenant(tenant_a):
        assert UsageRecord.objects.get(pk=restricted.pk).category == "summarization"
        assert UsageRecord.objects.get(pk=free.pk).category == "personal"


def test_a_lifted_restriction_no_longer_skips(tenant_a: Tenant) -> None:
    key = _key(tenant_a)
    owner = owner_of(tenant_a)
    _write(tenant_a, key, [CONTRACT], key_owner_id=owner.pk)
    ProcessingRestriction.objects.create(
        tenant=tenant_a, user_id=owner.pk, lifted_at=timezone.now()
    )

    assert _run(tenant_a)["skipped_restricted"] == 0


def test_only_records_in_the_range_are_reclassified(tenant_a: Tenant) -> None:
    key = _key(tenant_a)
    records = _write(tenant_a, key, [CONTRACT, CONTRACT, CONTRACT, None])
    _add_contract_category(tenant_a)
    since = (BASE + timedelta(minutes=1)).isoformat()
    until = (BASE + timedelta(minutes=2)).isoformat()

    result = _run(tenant_a, "--since", since, "--until", until)

    assert result["reclassified"] == 1
    assert result["skipped_privacy_mode"] == 0
    with in_tenant(tenant_a):
        categories = [UsageRecord.objects.get(pk=r.pk).category for r in records[:3]]
    assert categories == ["summarization", "contract_review", "summarization"]


def test_other_kinds_and_other_tenants_are_not_touched(tenant_a: Tenant, tenant_b: Tenant) -> None:
    key_a = _key(tenant_a)
    key_b = _key(tenant_b)
    (counted,) = _write(tenant_a, key_a, [CONTRACT], kind=UsageRecord.Kind.COUNT_TOKENS)
    (other,) = _write(tenant_b, key_b, [RECIPE])

    result = _run(tenant_a)

    assert result["reclassified"] == 0
    with in_tenant(tenant_a):
        assert UsageRecord.objects.get(pk=counted.pk).category == "summarization"
    with in_tenant(tenant_b):
        assert UsageRecord.objects.get(pk=other.pk).category == "summarization"


def test_review_flags_follow_the_current_threshold(tenant_a: Tenant) -> None:
    key = _key(tenant_a, purpose="Reviewing supplier and customer contracts for legal risk")
    records = _write(tenant_a, key, [CONTRACT, RECIPE])
    with in_tenant(tenant_a):
        classification_settings_update(owner_of(tenant_a), relevance_threshold=1.0)

    _run(tenant_a)

    with in_tenant(tenant_a):
        rows = [UsageRecord.objects.get(pk=r.pk) for r in records]
    assert all(r.relevance_score is not None for r in rows)
    assert rows[0].relevance_score > rows[1].relevance_score  # type: ignore[operator]
    assert [r.flagged_for_review for r in rows] == [True, True]


def test_rollups_match_a_rebuild_from_the_records_after_reclassify(tenant_a: Tenant) -> None:
    key = _key(tenant_a, purpose="Reviewing supplier and customer contracts for legal risk")
    _write(tenant_a, key, [CONTRACT, RECIPE, TRANSLATE, None, CONTRACT])
    _add_contract_category(tenant_a)

    result = _run(tenant_a, "--json")
    with in_tenant(tenant_a):
        maintained = _class_cube()
        rollup_rebuild(BASE - timedelta(hours=1), BASE + timedelta(hours=2))
        rebuilt = _class_cube()

    assert result["changed"] == 4
    assert maintained == rebuilt
    assert maintained[("category", "contract_review")][0] == 2
    assert ("category", "summarization") in maintained  # the Privacy Mode record kept its label


def test_a_second_run_changes_nothing(tenant_a: Tenant) -> None:
    key = _key(tenant_a)
    _write(tenant_a, key, [CONTRACT, RECIPE])
    _run(tenant_a)

    again = _run(tenant_a)

    assert again["reclassified"] == 2
    assert again["changed"] == 0


def test_small_batches_give_the_same_result(tenant_a: Tenant) -> None:
    key = _key(tenant_a)
    records = _write(tenant_a, key, [CONTRACT, RECIPE, TRANSLATE, CONTRACT, RECIPE])
    _add_contract_category(tenant_a)

    result = _run(tenant_a, "--batch", "2")

    assert result["reclassified"] == 5
    with in_tenant(tenant_a):
        categories = [UsageRecord.objects.get(pk=r.pk).category for r in records]
    assert categories[0] == categories[3] == "contract_review"
    assert categories[1] == categories[4] == "personal"


def test_the_command_prints_counts_without_json(tenant_a: Tenant) -> None:
    _write(tenant_a, _key(tenant_a), [None])
    out = StringIO()

    call_command("reclassify", "--tenant", tenant_a.slug, stdout=out)

    assert "skipped_privacy_mode: 1" in out.getvalue()
    assert "reclassified: 0" in out.getvalue()


def test_the_command_refuses_unknown_tenants_and_times_without_a_zone(tenant_a: Tenant) -> None:
    with pytest.raises(CommandError, match="No tenant"):
        call_command("reclassify", "--tenant", "no-such-tenant")
    with pytest.raises(CommandError, match="ISO time with a zone"):
        call_command("reclassify", "--tenant", tenant_a.slug, "--since", "2026-03-02T09:00")
    with pytest.raises(CommandError, match="ISO time with a zone"):
        call_command("reclassify", "--tenant", tenant_a.slug, "--until", "yesterday")
