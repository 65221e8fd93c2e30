"""Writes of the insight area: API tokens, the prompt-visibility setting, repricing."""

import secrets
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.http import HttpRequest
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from accounts.models import Role, User
from audit.models import ApiToken, InsightSettings, UsageRecord
from audit.models.api_tokens import API_TOKEN_PREFIX, api_token_hash
from audit.rollups import rollup_apply
from audit.services import audit_event_record
from proxy.pricing import usage_cost
from tokenscope.lib.errors import DomainError, PermissionDenied


def _admin(actor: User | None, what: str) -> None:
    if actor is not None and not actor.has_role(Role.ADMIN):
        raise PermissionDenied(f"Only owners and admins can {what}.")


def _short_id() -> str:
    tenant = getattr(connection, "tenant", None)
    return str(getattr(tenant, "short_id", "") or "x")


@sensitive_variables("token")
def api_token_create(
    actor: User | None,
    *,
    user: User,
    scope: str = ApiToken.Scope.READ,
    name: str = "",
    request: HttpRequest | None = None,
) -> tuple[ApiToken, str]:
    """Create an API token acting as `user`; returns the row and the token (shown once)."""
    _admin(actor, "create API tokens")
    if scope not in ApiToken.Scope.values:
        raise DomainError("Scope must be read or write.", field="scope")
    if not user.is_active:
        raise DomainError("That user is not active.", field="user")
    token = f"{API_TOKEN_PREFIX}{_short_id()}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        row = ApiToken.objects.create(
            name=name.strip()[:120],
            prefix=token[: len(API_TOKEN_PREFIX) + len(_short_id()) + 5],
            token_hash=api_token_hash(token),
            scope=scope,
            user=user,
            created_by=actor if actor is not None and actor.pk else None,
        )
        audit_event_record(
            actor,
            action="api_token.created",
            object_type="api_token",
            object_id=row.pk,
            object_repr=str(row),
            request=request,
            changes={"scope": scope, "user": user.email},
        )
    return row, token


def api_token_revoke(
    actor: User | None, *, token: ApiToken, request: HttpRequest | None = None
) -> ApiToken:
    """Revoke an API token for good (owners and admins)."""
    _admin(actor, "revoke API tokens")
    with transaction.atomic():
        updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if updated:
            audit_event_record(
                actor,
                action="api_token.revoked",
                object_type="api_token",
                object_id=token.pk,
                object_repr=str(token),
                request=request,
            )
    token.refresh_from_db()
    return token


def insight_settings_update(
    actor: User | None, *, hide_prompts_from_viewers: bool, request: HttpRequest | None = None
) -> InsightSettings:
    """Change whether viewers may read stored prompt text (owners and admins)."""
    _admin(actor, "change who sees prompt text")
    with transaction.atomic():
        settings, _ = InsightSettings.objects.select_for_update().get_or_create(pk=1)
        old = settings.hide_prompts_from_viewers
        if old != hide_prompts_from_viewers:
            settings.hide_prompts_from_viewers = hide_prompts_from_viewers
            settings.save()
            audit_event_record(
                actor,
                action="settings.prompt_visibility_changed",
                object_type="settings",
                object_id="insight",
                object_repr="Prompt text visibility",
                request=request,
                changes={"hide_prompts_from_viewers": [old, hide_prompts_from_viewers]},
            )
    return settings


def usage_reprice(
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    unpriced_only: bool = False,
    batch: int = 1000,
) -> dict[str, Any]:
    """Reprice records with today's price book, keeping the earlier figure in previous_costs.

    Rollups are corrected in the same transaction: old figures out, new figures in.
    """
    qs = UsageRecord.objects.filter(kind__in=["messages", "batch_result"]).exclude(model="")
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    if unpriced_only:
        qs = qs.filter(is_priced=False)
    seen = changed = 0
    ids = list(qs.order_by("created_at", "id").values_list("id", flat=True))
    now = timezone.now()
    for start in range(0, len(ids), batch):
        with transaction.atomic():
            records = list(
                UsageRecord.objects.select_for_update().filter(id__in=ids[start : start + batch])
            )
            seen += len(records)
            old, new = [], []
            for record in records:
                cost = usage_cost(
                    record.model,
                    record.usage_raw or {},
                    at=record.created_at,
                    batch=record.kind == UsageRecord.Kind.BATCH_RESULT,
                )
                if cost.total_usd == record.cost_usd and cost.priced == record.is_priced:
                    continue
                old.append(
                    UsageRecord(
                        **{
                            f.attname: getattr(record, f.attname)
                            for f in UsageRecord._meta.concrete_fields
                        }
                    )
                )
                record.previous_costs = [
                    *record.previous_costs,
                    {
                        "cost_usd": f"{record.cost_usd:f}",
                        "price_book_version": record.price_book_version,
                        "repriced_at": now.isoformat(),
                    },
                ]
                record.cost_usd = cost.total_usd
                record.cost_breakdown = cost.breakdown()
                record.price_book_version = cost.price_book_version
                record.is_priced = cost.priced
                new.append(record)
            if new:
                rollup_apply(old, sign=-1)
                UsageRecord.objects.bulk_update(
                    new,
                    [
                        "cost_usd",
                        "cost_breakdown",
                        "price_book_version",
                        "is_priced",
                        "previous_costs",
                    ],
                )
                rollup_apply(new, sign=1)
                changed += len(new)
    return {"examined": seen, "repriced": changed}
