"""Tenant taxonomies: lazy seeding, renaming, disabling, custom categories, the flag threshold."""

import pytest

from audit.classification import DEFAULT_TAXONOMY, classify
from audit.classification.selectors import (
    classification_settings,
    relevance_flagged,
    tenant_categories,
    tenant_taxonomy,
)
from audit.classification.services import (
    classification_settings_update,
    tenant_category_create,
    tenant_category_update,
)
from audit.models import AuditEvent, TenantCategory
from conftest import in_tenant, owner_of
from tenants.models import Tenant
from tokenscope.lib.errors import Conflict, DomainError, NotFound

CONTRACT_EXAMPLES = [
    "Is this limitation of liability clause acceptable for us as the supplier?",
    "Review the indemnification clause in this MSA and flag risks",
    "Does this termination clause favour the customer? Suggest a redline",
]


def test_first_read_seeds_the_default_taxonomy(tenant_a: Tenant) -> None:
    with in_tenant(tenant_a):
        TenantCategory.objects.all().delete()
        taxonomy = tenant_taxonomy()
        assert taxonomy == DEFAULT_TAXONOMY
        assert TenantCategory.objects.filter(is_default=True).count() == 10
        tenant_taxonomy()
        assert TenantCategory.objects.count() == 10  # seeded once


def test_renaming_and_disabling_change_the_tenant_taxonomy(tenant_a: Tenant) -> None:
    owner = owner_of(tenant_a)
    with in_tenant(tenant_a):
        tenant_category_update(owner, key="software_development", label="Engineering")
        tenant_category_update(owner, key="translation", is_enabled=False)
        taxonomy = tenant_taxonomy()
        assert taxonomy.get("software_development").label == "Engineering"  # type: ignore[union-attr]
        result = classify("Translate into French: 'Your payslip is ready.'", taxonomy=taxonomy)
        assert result.category != "translation"
        assert AuditEvent.objects.filter(action="classification.category_updated").count() == 2


def test_a_custom_category_is_stored_audited_and_used(tenant_a: Tenant) -> None:
    owner = owner_of(tenant_a)
    with in_tenant(tenant_a):
        tenant_category_create(
            owner,
            key="contract_review",
            label="Contract review",
            description="Reviewing contract clauses for legal risk",
            examples=CONTRACT_EXAMPLES,
        )
        taxonomy = tenant_taxonomy()
        assert taxonomy.keys()[-1] == "contract_review"
        result = classify(
            "Please review this liability clause and suggest a redline that limits our risk",
            taxonomy=taxonomy,
        )
        assert result.category == "contract_review"
        event = AuditEvent.objects.get(action="classification.category_created")
        assert event.changes == {"key": "contract_review", "examples": 3}


def test_custom_category_rules(tenant_a: Tenant) -> None:
    owner = owner_of(tenant_a)
    with in_tenant(tenant_a):
        with pytest.raises(DomainError):
            tenant_category_create(owner, key="Bad Key", label="x", description="d", examples=[])
        with pytest.raises(DomainError):
            tenant_category_create(owner, key="empty", label="Empty", description="", examples=[])
        with pytest.raises(Conflict):
            tenant_category_create(
                owner, key="translation", label="T", description="d", examples=[]
            )
        with pytest.raises(NotFound):
            tenant_category_update(owner, key="nope", label="x")


def test_the_last_enabled_category_cannot_be_disabled(tenant_a: Tenant) -> None:
    owner = owner_of(tenant_a)
    with in_tenant(tenant_a):
        keys = [row.key for row in tenant_categories()]
        for key in keys[:-1]:
            tenant_category_update(owner, key=key, is_enabled=False)
        with pytest.raises(DomainError):
            tenant_category_update(owner, key=keys[-1], is_enabled=False)


def test_tenants_have_separate_taxonomies(tenant_a: Tenant, tenant_b: Tenant) -> None:
    with in_tenant(tenant_a):
        tenant_category_update(owner_of(tenant_a), key="personal", label="Private use")
    with in_tenant(tenant_b):
        assert tenant_taxonomy().get("personal").label == "Personal (non-work)"  # type: ignore[union-attr]


def test_relevance_threshold_flags_low_scores_only(tenant_a: Tenant) -> None:
    owner = owner_of(tenant_a)
    with in_tenant(tenant_a):
        settings = classification_settings()
        assert settings.relevance_threshold == 0.5
        settings = classification_settings_update(owner, relevance_threshold=0.3)
        assert relevance_flagged(0.2, settings)
        assert not relevance_flagged(0.3, settings)
        assert not relevance_flagged(None, settings)
        settings = classification_settings_update(
            owner, relevance_threshold=0.3, flag_low_relevance=False
        )
        assert not relevance_flagged(0.1, settings)
        with pytest.raises(DomainError):
            classification_settings_update(owner, relevance_threshold=1.5)
        assert AuditEvent.objects.filter(action="classification.settings_updated").count() == 2
