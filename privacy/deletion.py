"""Tenant deletion: suspend at once, a cancellable grace period, then a purge and a tombstone."""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import connection, transaction
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts.models import Role, User
from audit.services import audit_event_record
from privacy.adapters import TENANT_PURGE_HOOKS, subscription_cancel
from privacy.models import ScheduledDeletion, TenantTombstone, hash_token, new_token
from privacy.selectors import tenant_owner_emails
from privacy.services import public_url
from proxy.services import config_changed_notify
from tenants.models import Tenant
from tokenscope.lib.errors import DomainError, NotFound

logger = logging.getLogger(__name__)

MAX_GRACE_DAYS = 14


def grace_period() -> timedelta:
    days = getattr(settings, "PRIVACY_DELETION_GRACE_DAYS", MAX_GRACE_DAYS)
    return timedelta(days=max(0, min(int(days), MAX_GRACE_DAYS)))


def tenant_sessions_revoke(tenant: Tenant) -> int:
    """End every session in the tenant's schema."""
    with schema_context(tenant.schema_name):
        deleted, _ = Session.objects.all().delete()
    return deleted


def tenant_deletion_request(
    tenant: Tenant,
    *,
    actor: User,
    password: str,
    confirm_slug: str,
    request: HttpRequest | None = None,
) -> ScheduledDeletion:
    """An owner asks to delete the workspace: it is suspended now and purged after the grace."""
    if actor.role != Role.OWNER:
        raise DomainError("Only an owner can delete the workspace.")
    if not actor.check_password(password):
        raise DomainError("The password is not correct.", field="password")
    if confirm_slug.strip().lower() != tenant.slug:
        raise DomainError(f"Type {tenant.slug} to confirm.", field="confirm_slug")
    if tenant.status != Tenant.Status.ACTIVE:
        raise DomainError("This workspace is not active.")
    token = new_token()
    now = timezone.now()
    with transaction.atomic():
        tenant.status = Tenant.Status.DELETING
        tenant.save(update_fields=["status"])
        config_changed_notify(tenant)  # proxies refuse the tenant's keys at once
        deletion = ScheduledDeletion.objects.create(
            tenant=tenant,
            tenant_short_id=tenant.short_id,
            requested_at=now,
            due_at=now + grace_period(),
            cancel_token_hash=hash_token(token),
        )
        with schema_context(tenant.schema_name):
            audit_event_record(
                actor,
                action="tenant.deletion_requested",
                object_type="tenant",
                object_id=tenant.short_id,
                object_repr=tenant.name,
                request=request,
                changes={"purge_due_at": deletion.due_at.isoformat()},
            )
        tenant_sessions_revoke(tenant)
        transaction.on_commit(lambda: _after_deletion_request(tenant, deletion, token))
    logger.info("tenant deletion requested tenant=%s due=%s", tenant.short_id, deletion.due_at)
    return deletion


def _after_deletion_request(tenant: Tenant, deletion: ScheduledDeletion, token: str) -> None:
    outcome = subscription_cancel(tenant, reason="account deletion")
    ScheduledDeletion.objects.filter(pk=deletion.pk).update(subscription_cancel=outcome)
    body = render_to_string(
        "privacy/emails/deletion_requested.txt",
        {
            "tenant": tenant,
            "deletion": deletion,
            "link": public_url(f"/privacy/deletion/cancel/{token}/"),
        },
    )
    for email in tenant_owner_emails(tenant):
        send_mail(f"{tenant.name} will be deleted", body, None, [email])


def deletion_for_token(token: str) -> ScheduledDeletion:
    deletion = (
        ScheduledDeletion.objects.select_related("tenant")
        .filter(
            cancel_token_hash=hash_token(token),
            status=ScheduledDeletion.Status.PENDING,
            due_at__gt=timezone.now(),
            tenant__isnull=False,
        )
        .first()
    )
    if deletion is None:
        raise NotFound("This link is invalid, already used or the grace period is over.")
    return deletion


def tenant_deletion_cancel(token: str, *, email: str, password: str) -> Tenant:
    """An owner cancels the deletion during the grace period: the workspace is active again."""
    deletion = deletion_for_token(token)
    tenant = deletion.tenant
    assert tenant is not None
    with schema_context(tenant.schema_name):
        owner = User.objects.filter(
            email__iexact=email.strip(), role=Role.OWNER, is_active=True
        ).first()
        if owner is None or not owner.check_password(password):
            raise DomainError("Sign in with the email and password of an owner.")
    with transaction.atomic():
        claimed = ScheduledDeletion.objects.filter(
            pk=deletion.pk, status=ScheduledDeletion.Status.PENDING
        ).update(
            status=ScheduledDeletion.Status.CANCELLED,
            cancelled_at=timezone.now(),
            cancel_token_hash="",
        )
        if not claimed:
            raise NotFound("This deletion is no longer pending.")
        Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.ACTIVE)
        config_changed_notify(tenant)
        with schema_context(tenant.schema_name):
            audit_event_record(
                owner,
                action="tenant.deletion_cancelled",
                object_type="tenant",
                object_id=tenant.short_id,
                object_repr=tenant.name,
            )
    tenant.refresh_from_db()
    return tenant


def _tenant_schema_counts(tenant: Tenant) -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, n_live_tup FROM pg_stat_user_tables WHERE schemaname = %s",
            [tenant.schema_name],
        )
        return {name: int(count) for name, count in cursor.fetchall()}


def _public_rows_delete(tenant: Tenant) -> dict[str, int]:
    """Delete every public row with a foreign key to the tenant, whatever its on_delete."""
    deleted: dict[str, int] = {}
    for relation in Tenant._meta.related_objects:
        model = relation.related_model
        if model in (ScheduledDeletion, Tenant) or relation.many_to_many:
            continue
        field = relation.field.name
        count, _ = model._default_manager.filter(**{field: tenant}).delete()
        if count:
            deleted[model._meta.label] = count
    return deleted


def _cache_scrub(schema_name: str) -> int:
    """Delete the tenant's cache keys (the key function prefixes the schema name)."""
    try:
        client = cache._cache.get_client(None, write=True)  # type: ignore[attr-defined]
        keys = list(client.scan_iter(match=f"{schema_name}:*", count=1000))
        if keys:
            client.delete(*keys)
        return len(keys)
    except Exception:
        logger.warning("cache scrub failed schema=%s", schema_name)
        return 0


def tenant_purge(deletion: ScheduledDeletion, *, now: datetime | None = None) -> TenantTombstone:
    """Drop the tenant's schema and public rows; leave a tombstone. Safe to run again."""
    now = now or timezone.now()
    ScheduledDeletion.objects.filter(pk=deletion.pk).update(
        started_at=now, attempts=deletion.attempts + 1
    )
    summary: dict[str, object] = {}
    tenant = Tenant.objects.filter(pk=deletion.tenant_id).select_related("plan").first()
    plan = tenant.plan.slug if tenant else ""
    created_at = tenant.created_at if tenant else None
    if tenant is not None:
        connection.set_schema_to_public()  # type: ignore[attr-defined]
        if not deletion.subscription_cancel.startswith("canceled"):
            # The cancel at request time failed or never ran: try again before the rows go.
            outcome = subscription_cancel(tenant, reason="account deletion")
            summary["subscription_cancel"] = outcome
        summary["schema_tables"] = _tenant_schema_counts(tenant)
        hooks: dict[str, int] = {}
        for hook in TENANT_PURGE_HOOKS:
            hooks.update(hook(tenant))
        with transaction.atomic():
            with connection.cursor() as cursor:
                # Check deferred foreign keys now: DROP SCHEMA refuses tables with pending ones.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            public = _public_rows_delete(tenant)
            public.update(hooks)
            tenant.delete(force_drop=True)
        summary["public_rows"] = public
        summary["cache_keys"] = _cache_scrub(tenant.schema_name)
        summary["tenant_row"] = 1
    tombstone, _ = TenantTombstone.objects.get_or_create(
        tenant_short_id=deletion.tenant_short_id,
        defaults={
            "plan": plan,
            "created_at": created_at,
            "deletion_requested_at": deletion.requested_at,
            "purged_at": now,
            "deleted": summary,
        },
    )
    ScheduledDeletion.objects.filter(pk=deletion.pk).update(
        status=ScheduledDeletion.Status.COMPLETED, completed_at=now, cancel_token_hash=""
    )
    logger.info("tenant purged tenant=%s", deletion.tenant_short_id)
    return tombstone


def deletions_run(*, now: datetime | None = None) -> int:
    """The daily job: purge every tenant whose grace period is over."""
    now = now or timezone.now()
    due = ScheduledDeletion.objects.filter(
        status=ScheduledDeletion.Status.PENDING, due_at__lte=now
    ).order_by("due_at")
    count = 0
    for deletion in due:
        try:
            tenant_purge(deletion, now=now)
        except Exception:
            logger.exception("tenant purge failed tenant=%s", deletion.tenant_short_id)
            continue
        count += 1
    return count
