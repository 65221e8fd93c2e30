"""Writes to a tenant's taxonomy and classification settings, each with an audit event."""

import re
from typing import Any

from django.db import transaction
from django.http import HttpRequest

from accounts.models import User
from audit.classification.selectors import classification_settings, tenant_categories
from audit.models import ClassificationSettings, TenantCategory
from audit.services import audit_event_record
from tokenscope.lib.errors import Conflict, DomainError, NotFound

KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,59}$")
MAX_EXAMPLES = 20
MAX_EXAMPLE_CHARS = 1000
MAX_CUSTOM_CATEGORIES = 30


def _clean_examples(examples: list[str]) -> list[str]:
    cleaned = [str(example).strip() for example in examples if str(example).strip()]
    if len(cleaned) > MAX_EXAMPLES:
        raise DomainError(f"At most {MAX_EXAMPLES} examples per category.", field="examples")
    if any(len(example) > MAX_EXAMPLE_CHARS for example in cleaned):
        raise DomainError(
            f"Each example must be at most {MAX_EXAMPLE_CHARS} characters.", field="examples"
        )
    return cleaned


def tenant_category_create(
    actor: User,
    *,
    key: str,
    label: str,
    description: str,
    examples: list[str],
    request: HttpRequest | None = None,
) -> TenantCategory:
    """Add a tenant category; it needs a description or at least one example to be scored."""
    tenant_categories()  # make sure the defaults exist first
    if not KEY_PATTERN.match(key):
        raise DomainError(
            "Use 2-60 lower-case letters, digits and underscores, starting with a letter.",
            field="key",
        )
    cleaned = _clean_examples(examples)
    if not description.strip() and not cleaned:
        raise DomainError("Give a description or at least one example.", field="description")
    if not label.strip():
        raise DomainError("Give the category a name.", field="label")
    with transaction.atomic():
        if TenantCategory.objects.filter(key=key).exists():
            raise Conflict("A category with this key exists already.", field="key")
        if TenantCategory.objects.filter(is_default=False).count() >= MAX_CUSTOM_CATEGORIES:
            raise DomainError(f"At most {MAX_CUSTOM_CATEGORIES} custom categories.")
        last = TenantCategory.objects.order_by("-position").first()
        category = TenantCategory.objects.create(
            key=key,
            label=label.strip(),
            description=description.strip(),
            examples=cleaned,
            position=(last.position + 1) if last else 0,
        )
        audit_event_record(
            actor,
            action="classification.category_created",
            object_type="tenant_category",
            object_id=category.pk,
            object_repr=category.label,
            request=request,
            changes={"key": key, "examples": len(cleaned)},
        )
    return category


def tenant_category_update(
    actor: User,
    *,
    key: str,
    label: str | None = None,
    description: str | None = None,
    examples: list[str] | None = None,
    is_enabled: bool | None = None,
    request: HttpRequest | None = None,
) -> TenantCategory:
    """Rename, describe, give examples to, enable or disable a category (default or custom)."""
    tenant_categories()
    with transaction.atomic():
        category = TenantCategory.objects.select_for_update().filter(key=key).first()
        if category is None:
            raise NotFound("No such category.")
        changes: dict[str, Any] = {}
        if label is not None:
            if not label.strip():
                raise DomainError("Give the category a name.", field="label")
            changes["label"] = [category.label, label.strip()]
            category.label = label.strip()
        if description is not None:
            changes["description"] = "changed"
            category.description = description.strip()
        if examples is not None:
            cleaned = _clean_examples(examples)
            changes["examples"] = [len(category.examples or []), len(cleaned)]
            category.examples = cleaned
        if is_enabled is not None:
            if not is_enabled and category.is_enabled:
                enabled = TenantCategory.objects.filter(is_enabled=True).count()
                if enabled <= 1:
                    raise DomainError("At least one category must stay enabled.")
            changes["is_enabled"] = [category.is_enabled, is_enabled]
            category.is_enabled = is_enabled
        category.save()
        audit_event_record(
            actor,
            action="classification.category_updated",
            object_type="tenant_category",
            object_id=category.pk,
            object_repr=category.label,
            request=request,
            changes=changes,
        )
    return category


def classification_settings_update(
    actor: User,
    *,
    relevance_threshold: float,
    flag_low_relevance: bool = True,
    request: HttpRequest | None = None,
) -> ClassificationSettings:
    """Set the relevance score below which requests are flagged for review."""
    if not 0.0 <= relevance_threshold <= 1.0:
        raise DomainError("The threshold must be between 0 and 1.", field="relevance_threshold")
    with transaction.atomic():
        settings = classification_settings()
        changes = {
            "relevance_threshold": [settings.relevance_threshold, relevance_threshold],
            "flag_low_relevance": [settings.flag_low_relevance, flag_low_relevance],
        }
        settings.relevance_threshold = relevance_threshold
        settings.flag_low_relevance = flag_low_relevance
        settings.save()
        audit_event_record(
            actor,
            action="classification.settings_updated",
            object_type="classification_settings",
            object_id=settings.pk,
            object_repr="Classification settings",
            request=request,
            changes=changes,
        )
    return settings
