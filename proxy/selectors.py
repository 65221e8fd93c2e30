"""Reads of the workspace, including the lookups the proxy's hot path calls."""

from typing import Any
from uuid import UUID

from django.conf import settings
from django.db.models import QuerySet

from proxy.models import (
    AnthropicCredential,
    CostCenter,
    Project,
    ProxyKey,
    proxy_key_hash,
    proxy_key_tenant_short_id,
)


def anthropic_credential_for(project_id: int | None) -> AnthropicCredential | None:
    """The key to use for a project: its own, else the tenant default. Archived projects: None."""
    if project_id is not None:
        project = Project.objects.filter(pk=project_id).only("archived_at").first()
        if project is None or project.is_archived:
            return None
        own = AnthropicCredential.objects.filter(project_id=project_id).first()
        if own is not None:
            return own
    return AnthropicCredential.objects.filter(project__isnull=True).first()


def anthropic_credential_list() -> QuerySet[AnthropicCredential]:
    return AnthropicCredential.objects.select_related("project", "created_by").order_by(
        "project__name"
    )


def proxy_key_for_secret(key: str) -> ProxyKey | None:
    """The usable proxy key with this secret (in the current schema), or None.

    Revoked and expired keys, and keys of archived projects or cost centers, are not usable.
    """
    if proxy_key_tenant_short_id(key) is None:
        return None
    return (
        ProxyKey.objects.usable()
        .filter(
            key_hash=proxy_key_hash(key),
            project__archived_at__isnull=True,
            cost_center__archived_at__isnull=True,
        )
        .select_related("project", "cost_center")
        .first()
    )


def proxy_key_list(*, owner_id: int | None = None) -> QuerySet[ProxyKey]:
    keys = ProxyKey.objects.select_related("project", "cost_center", "created_by", "owner")
    if owner_id is not None:
        keys = keys.filter(owner_id=owner_id)
    return keys.order_by("revoked_at", "-created_at")


def project_list(*, include_archived: bool = True) -> QuerySet[Project]:
    projects = Project.objects.select_related("default_cost_center")
    return projects if include_archived else projects.filter(archived_at__isnull=True)


def cost_center_list(*, include_archived: bool = True) -> QuerySet[CostCenter]:
    centers = CostCenter.objects.all()
    return centers if include_archived else centers.filter(archived_at__isnull=True)


def proxy_base_url() -> str:
    """The public API host clients point ANTHROPIC_BASE_URL at."""
    port = f":{settings.PUBLIC_PORT}" if settings.PUBLIC_PORT else ""
    return f"{settings.PUBLIC_SCHEME}://{settings.BASE_DOMAIN}{port}"


def onboarding_status() -> dict[str, Any]:
    """Which first steps the tenant has done: Anthropic key, project, proxy key."""
    steps = {
        "anthropic_key": AnthropicCredential.objects.exists(),
        "project": Project.objects.filter(archived_at__isnull=True).exists(),
        "proxy_key": ProxyKey.objects.usable().exists(),
    }
    return {**steps, "done": all(steps.values())}


def proxy_key_get(key_id: UUID) -> ProxyKey | None:
    return ProxyKey.objects.filter(pk=key_id).select_related("project", "cost_center").first()
