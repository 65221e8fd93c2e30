"""Reads of a tenant's classification set-up (call inside the tenant's schema)."""

from django.db import IntegrityError, transaction

from audit.classification.taxonomy import DEFAULT_CATEGORIES, Category, Taxonomy
from audit.models import ClassificationSettings, TenantCategory


def _seed_defaults() -> None:
    """Create the shipped categories the first time a tenant's taxonomy is read."""
    try:
        with transaction.atomic():
            TenantCategory.objects.bulk_create(
                [
                    TenantCategory(
                        key=category.key,
                        label=category.label,
                        description=category.description,
                        examples=list(category.examples),
                        is_default=True,
                        position=position,
                    )
                    for position, category in enumerate(DEFAULT_CATEGORIES)
                ]
            )
    except IntegrityError:  # a concurrent first read seeded them already
        pass


def tenant_categories() -> list[TenantCategory]:
    """The tenant's categories in display order, seeded from the defaults on first read."""
    rows = list(TenantCategory.objects.all())
    if not rows:
        _seed_defaults()
        rows = list(TenantCategory.objects.all())
    return rows


def tenant_taxonomy() -> Taxonomy:
    """The tenant's taxonomy, ready for `classify(..., taxonomy=...)`.

    One query per call; the proxy may cache the result per tenant for a short time.
    """
    return Taxonomy(
        tuple(
            Category(
                key=row.key,
                label=row.label,
                description=row.description,
                examples=tuple(str(example) for example in row.examples or ()),
                enabled=row.is_enabled,
            )
            for row in tenant_categories()
        )
    )


def classification_settings() -> ClassificationSettings:
    """The tenant's settings row (created with the defaults on first read)."""
    settings, _ = ClassificationSettings.objects.get_or_create(pk=1)
    return settings


def relevance_flagged(relevance: float | None, settings: ClassificationSettings) -> bool:
    """True when a request should be flagged for review for low relevance (never blocked)."""
    return (
        settings.flag_low_relevance
        and relevance is not None
        and relevance < settings.relevance_threshold
    )
