"""Writes of the workspace: cost centers, projects, Anthropic credentials and proxy keys.

Every write takes the acting user (None for operator commands), records an audit event in the
same transaction, and after commit bumps the tenant's config generation so proxies drop caches.
No audit row, log line or error message ever carries key material (the hint at most).
"""

import logging
import re
import secrets
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import ProtectedError, Q
from django.http import HttpRequest
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from accounts.models import Role, User
from audit.services import audit_event_record
from proxy.custody import (
    KeyCustodyError,
    kek_provider,
    plaintext_cache,
    seal_for,
    sealed_of,
)
from proxy.custody.envelope import rewrap
from proxy.models import (
    PROXY_KEY_PREFIX,
    AnthropicCredential,
    CostCenter,
    Project,
    ProxyKey,
    proxy_key_hash,
)
from proxy.upstream import anthropic_key_verify
from tenants.models import Tenant
from tokenscope.lib.errors import Conflict, DomainError, PermissionDenied
from tokenscope.lib.redis import get_redis

logger = logging.getLogger(__name__)

# Standard API keys look like sk-ant-api03-<about 95 of [A-Za-z0-9_-]>.
ANTHROPIC_KEY_RE = re.compile(r"^sk-ant-(?P<kind>[a-z]+)(?P<version>\d{2})-[A-Za-z0-9_-]{32,200}$")


CONFIG_CHANGED_CHANNEL = "ts:config-changed"


def config_changed_notify(tenant: Tenant, *, credential_id: Any = None) -> None:
    """After commit: drop this process's cached plaintext and tell every proxy process
    (Redis pub/sub) to drop what it cached of the tenant."""

    def notify() -> None:
        if credential_id is not None:
            plaintext_cache.drop(credential_id)
        try:
            get_redis().publish(CONFIG_CHANGED_CHANNEL, tenant.short_id)
        except Exception as exc:  # Redis down must not undo a committed change.
            logger.warning("Could not publish a config change: %s", type(exc).__name__)

    transaction.on_commit(notify)


def _require(actor: User | None, role: str, message: str) -> None:
    """None is an operator command (CLI); users need at least `role`."""
    if actor is not None and not actor.has_role(role):
        raise PermissionDenied(message)


def _admin_only(actor: User | None, what: str) -> None:
    _require(actor, Role.ADMIN, f"Only owners and admins can {what}.")


# ---- cost centers ---------------------------------------------------------------------------


def _archive(
    actor: User | None,
    tenant: Tenant,
    obj: CostCenter | Project,
    kind: str,
    label: str,
    archived: bool,
    request: HttpRequest | None,
) -> None:
    if obj.is_archived == archived:
        return
    with transaction.atomic():
        obj.archived_at = timezone.now() if archived else None
        obj.save(update_fields=["archived_at"])
        audit_event_record(
            actor,
            action=f"{kind}.archived" if archived else f"{kind}.restored",
            object_type=kind,
            object_id=obj.pk,
            object_repr=label,
            request=request,
        )
        config_changed_notify(tenant)


def _delete(
    actor: User | None,
    tenant: Tenant,
    obj: CostCenter | Project,
    kind: str,
    label: str,
    in_use: str,
    request: HttpRequest | None,
) -> None:
    pk = obj.pk
    try:
        with transaction.atomic():
            obj.delete()
            audit_event_record(
                actor,
                action=f"{kind}.deleted",
                object_type=kind,
                object_id=pk,
                object_repr=label,
                request=request,
            )
            config_changed_notify(tenant)
    except ProtectedError as exc:
        raise Conflict(in_use) from exc


def cost_center_create(
    actor: User | None,
    *,
    tenant: Tenant,
    code: str,
    name: str,
    owner_email: str = "",
    request: HttpRequest | None = None,
) -> CostCenter:
    """Create a cost center; codes are unique in the tenant."""
    _admin_only(actor, "manage cost centers")
    code, name = code.strip(), name.strip()
    if not code or not name:
        raise DomainError("A cost center needs a code and a name.", field="code")
    if CostCenter.objects.filter(code__iexact=code).exists():
        raise Conflict(f"A cost center with code {code!r} already exists.", field="code")
    with transaction.atomic():
        cost_center = CostCenter.objects.create(
            code=code, name=name, owner_email=owner_email.strip().lower()
        )
        audit_event_record(
            actor,
            action="cost_center.created",
            object_type="cost_center",
            object_id=cost_center.pk,
            object_repr=str(cost_center),
            request=request,
        )
        config_changed_notify(tenant)
    return cost_center


def cost_center_update(
    actor: User | None,
    *,
    tenant: Tenant,
    cost_center: CostCenter,
    code: str,
    name: str,
    owner_email: str = "",
    request: HttpRequest | None = None,
) -> CostCenter:
    """Rename a cost center or change its code or owner."""
    _admin_only(actor, "manage cost centers")
    code, name = code.strip(), name.strip()
    if not code or not name:
        raise DomainError("A cost center needs a code and a name.", field="code")
    if CostCenter.objects.filter(code__iexact=code).exclude(pk=cost_center.pk).exists():
        raise Conflict(f"A cost center with code {code!r} already exists.", field="code")
    new = {"code": code, "name": name, "owner_email": owner_email.strip().lower()}
    changes = {
        f: [getattr(cost_center, f), v] for f, v in new.items() if getattr(cost_center, f) != v
    }
    if not changes:
        return cost_center
    with transaction.atomic():
        for field, value in new.items():
            setattr(cost_center, field, value)
        cost_center.save(update_fields=list(new))
        audit_event_record(
            actor,
            action="cost_center.updated",
            object_type="cost_center",
            object_id=cost_center.pk,
            object_repr=str(cost_center),
            request=request,
            changes=changes,
        )
        config_changed_notify(tenant)
    return cost_center


def cost_center_archive(
    actor: User | None,
    *,
    tenant: Tenant,
    cost_center: CostCenter,
    archived: bool = True,
    request: HttpRequest | None = None,
) -> CostCenter:
    """Archive (or restore) a cost center: it stays on old records but takes no new keys."""
    _admin_only(actor, "manage cost centers")
    _archive(actor, tenant, cost_center, "cost_center", str(cost_center), archived, request)
    return cost_center


def cost_center_delete(
    actor: User | None,
    *,
    tenant: Tenant,
    cost_center: CostCenter,
    request: HttpRequest | None = None,
) -> None:
    """Delete an unused cost center; one that records reference can only be archived."""
    _admin_only(actor, "manage cost centers")
    label = str(cost_center)
    _delete(
        actor,
        tenant,
        cost_center,
        "cost_center",
        label,
        f"Cost center {label} is used by proxy keys or projects; archive it instead.",
        request,
    )


# ---- projects -------------------------------------------------------------------------------


def _check_cost_center_usable(cost_center: CostCenter | None) -> None:
    if cost_center is not None and cost_center.is_archived:
        raise DomainError(
            f"Cost center {cost_center.code} is archived.", field="default_cost_center"
        )


def project_create(
    actor: User | None,
    *,
    tenant: Tenant,
    name: str,
    purpose: str = "",
    default_cost_center: CostCenter | None = None,
    request: HttpRequest | None = None,
) -> Project:
    """Create a project; names are unique in the tenant."""
    _admin_only(actor, "manage projects")
    name = name.strip()
    if not name:
        raise DomainError("A project needs a name.", field="name")
    if Project.objects.filter(name__iexact=name).exists():
        raise Conflict(f"A project named {name!r} already exists.", field="name")
    _check_cost_center_usable(default_cost_center)
    with transaction.atomic():
        project = Project.objects.create(
            name=name, purpose=purpose.strip(), default_cost_center=default_cost_center
        )
        audit_event_record(
            actor,
            action="project.created",
            object_type="project",
            object_id=project.pk,
            object_repr=project.name,
            request=request,
        )
        config_changed_notify(tenant)
    return project


def project_update(
    actor: User | None,
    *,
    tenant: Tenant,
    project: Project,
    name: str,
    purpose: str = "",
    default_cost_center: CostCenter | None = None,
    request: HttpRequest | None = None,
) -> Project:
    """Rename a project, change its purpose text or default cost center."""
    _admin_only(actor, "manage projects")
    name = name.strip()
    if not name:
        raise DomainError("A project needs a name.", field="name")
    if Project.objects.filter(name__iexact=name).exclude(pk=project.pk).exists():
        raise Conflict(f"A project named {name!r} already exists.", field="name")
    if default_cost_center != project.default_cost_center:
        _check_cost_center_usable(default_cost_center)
    changes: dict[str, Any] = {}
    if project.name != name:
        changes["name"] = [project.name, name]
    if project.purpose != purpose.strip():
        changes["purpose"] = "changed"
    if project.default_cost_center_id != (default_cost_center.pk if default_cost_center else None):
        changes["default_cost_center"] = [
            project.default_cost_center_id,
            default_cost_center.pk if default_cost_center else None,
        ]
    if not changes:
        return project
    with transaction.atomic():
        project.name, project.purpose = name, purpose.strip()
        project.default_cost_center = default_cost_center
        project.save(update_fields=["name", "purpose", "default_cost_center"])
        audit_event_record(
            actor,
            action="project.updated",
            object_type="project",
            object_id=project.pk,
            object_repr=project.name,
            request=request,
            changes=changes,
        )
        config_changed_notify(tenant)
    return project


def project_archive(
    actor: User | None,
    *,
    tenant: Tenant,
    project: Project,
    archived: bool = True,
    request: HttpRequest | None = None,
) -> Project:
    """Archive (or restore) a project; the proxy stops serving its keys while archived."""
    _admin_only(actor, "manage projects")
    _archive(actor, tenant, project, "project", project.name, archived, request)
    return project


def project_delete(
    actor: User | None, *, tenant: Tenant, project: Project, request: HttpRequest | None = None
) -> None:
    """Delete an unused project; one that records reference can only be archived."""
    _admin_only(actor, "manage projects")
    _delete(
        actor,
        tenant,
        project,
        "project",
        project.name,
        f"Project {project.name} is used by proxy keys or a stored key; archive it instead.",
        request,
    )


# ---- Anthropic credentials --------------------------------------------------------------------


@sensitive_variables("key")
def anthropic_key_validate(key: str) -> str:
    """Check a key's shape before storing it; the message never echoes the key."""
    key = key.strip()
    match = ANTHROPIC_KEY_RE.match(key)
    if match is None:
        raise DomainError(
            "This does not look like an Anthropic API key: it should start with sk-ant-api03- "
            "and contain only letters, digits, '-' and '_'.",
            field="key",
        )
    if match["kind"] != "api":
        raise DomainError(
            "This is not a standard Anthropic API key (Admin keys and OAuth tokens cannot "
            "call the Messages API). Create an API key in the Anthropic Console.",
            field="key",
        )
    return key


@sensitive_variables("key", "sealed")
def anthropic_credential_set(
    actor: User | None,
    *,
    tenant: Tenant,
    key: str,
    project: Project | None = None,
    verify: bool = False,
    request: HttpRequest | None = None,
) -> AnthropicCredential:
    """Store (or replace) the tenant's default key, or a project's own key, encrypted.

    The optional upstream check and the KEK wrap run before the transaction (network I/O).
    """
    _admin_only(actor, "change the Anthropic key")
    key = anthropic_key_validate(key)
    if project is not None and project.is_archived:
        raise DomainError("This project is archived.", field="project")
    if verify:
        anthropic_key_verify(key)
    existing = AnthropicCredential.objects.filter(project=project).first()
    row = existing or AnthropicCredential(id=uuid.uuid4(), project=project)
    sealed = seal_for(row, key, tenant=tenant)
    now = timezone.now()
    try:
        with transaction.atomic():
            if existing is not None:
                # Only replace the row we sealed for: its id is inside the AAD.
                locked = (
                    AnthropicCredential.objects.select_for_update().filter(pk=existing.pk).first()
                )
                if locked is None:
                    raise Conflict("The key changed while saving; try again.")
                row = locked
                row.rotated_at = now
            else:
                row.created_at, row.created_by = now, actor if actor and actor.pk else None
            row.enc_version, row.alg = sealed.enc_version, sealed.alg
            row.kek_id, row.wrap_alg = sealed.kek_id, sealed.wrap_alg
            row.wrapped_dek, row.nonce, row.ciphertext = (
                sealed.wrapped_dek,
                sealed.nonce,
                sealed.ciphertext,
            )
            row.hint = key[-4:]
            if existing is not None:
                row.save()
            else:
                row.save(force_insert=True)
            audit_event_record(
                actor,
                action="anthropic_credential.replaced"
                if existing
                else "anthropic_credential.created",
                object_type="anthropic_credential",
                object_id=row.pk,
                object_repr=str(row),
                request=request,
                changes={"hint": row.hint, "kek_id": row.kek_id},
            )
            config_changed_notify(tenant, credential_id=row.pk)
    except IntegrityError as exc:
        raise Conflict("Another key was saved for this scope at the same time; retry.") from exc
    return row


def anthropic_credential_delete(
    actor: User | None,
    *,
    tenant: Tenant,
    credential: AnthropicCredential,
    request: HttpRequest | None = None,
) -> None:
    """Delete a stored key; its data key goes with the row (crypto-shredding of live data)."""
    _admin_only(actor, "delete the Anthropic key")
    pk, label = credential.pk, str(credential)
    with transaction.atomic():
        credential.delete()
        audit_event_record(
            actor,
            action="anthropic_credential.deleted",
            object_type="anthropic_credential",
            object_id=pk,
            object_repr=label,
            request=request,
        )
        config_changed_notify(tenant, credential_id=pk)


def anthropic_credential_rewrap(credential: AnthropicCredential, *, tenant: Tenant) -> bool:
    """Rewrap one row's data key under the current KEK; False if already current or raced."""
    provider = kek_provider()
    if credential.kek_id == provider.current_kek_id:
        return False
    old = sealed_of(credential)
    new = rewrap(old, provider=provider)  # KEK calls happen outside the transaction.
    with transaction.atomic():
        updated = AnthropicCredential.objects.filter(
            pk=credential.pk, kek_id=old.kek_id, wrapped_dek=old.wrapped_dek
        ).update(kek_id=new.kek_id, wrap_alg=new.wrap_alg, wrapped_dek=new.wrapped_dek)
        if updated:
            audit_event_record(
                None,
                action="anthropic_credential.rewrapped",
                object_type="anthropic_credential",
                object_id=credential.pk,
                object_repr=str(credential),
                changes={"kek_id": [old.kek_id, new.kek_id]},
            )
            config_changed_notify(tenant, credential_id=credential.pk)
    return bool(updated)


def anthropic_credentials_rewrap(*, tenant: Tenant) -> dict[str, int]:
    """Rewrap every row of the current schema not under the current KEK version."""
    counts = {"rewrapped": 0, "already_current": 0, "failed": 0}
    current = kek_provider().current_kek_id
    counts["already_current"] = AnthropicCredential.objects.filter(kek_id=current).count()
    for credential in AnthropicCredential.objects.exclude(kek_id=current).iterator():
        try:
            done = anthropic_credential_rewrap(credential, tenant=tenant)
        except KeyCustodyError as exc:
            logger.warning(
                "Rewrap failed for credential %s of %s: %s",
                credential.pk,
                tenant.short_id,
                type(exc).__name__,
            )
            counts["failed"] += 1
            continue
        counts["rewrapped" if done else "already_current"] += 1
    return counts


# ---- proxy keys -------------------------------------------------------------------------------


@sensitive_variables("key")
def proxy_key_generate(tenant: Tenant) -> str:
    """A new proxy key: tsk_<tenant short id>_<43 url-safe chars = 256 random bits>."""
    return f"{PROXY_KEY_PREFIX}{tenant.short_id}_{secrets.token_urlsafe(32)}"


@sensitive_variables("key")
def proxy_key_create(
    actor: User | None,
    *,
    tenant: Tenant,
    project: Project,
    cost_center: CostCenter,
    name: str = "",
    owner: User | None = None,
    expires_at: datetime | None = None,
    allowed_models: list[str] | None = None,
    rpm_limit: int | None = None,
    input_tpm_limit: int | None = None,
    output_tpm_limit: int | None = None,
    request: HttpRequest | None = None,
) -> tuple[ProxyKey, str]:
    """Create a proxy key; returns the row and the key, which is never retrievable again.

    Members may create keys owned by themselves; owners and admins may name any owner.
    """
    _require(actor, Role.MEMBER, "Viewers cannot create proxy keys.")
    if actor is not None and not actor.is_admin:
        if owner is not None and owner.pk != actor.pk:
            raise PermissionDenied("Members can only create keys they own themselves.")
        owner = actor
    if project.is_archived:
        raise DomainError(f"Project {project.name} is archived.", field="project")
    if cost_center.is_archived:
        raise DomainError(f"Cost center {cost_center.code} is archived.", field="cost_center")
    if expires_at is not None and expires_at <= timezone.now():
        raise DomainError("The expiry must be in the future.", field="expires_at")
    key = proxy_key_generate(tenant)
    with transaction.atomic():
        proxy_key = ProxyKey.objects.create(
            name=name.strip(),
            prefix=key[: len(PROXY_KEY_PREFIX) + len(tenant.short_id) + 5],
            key_hash=proxy_key_hash(key),
            project=project,
            cost_center=cost_center,
            owner=owner,
            created_by=actor if actor is not None and actor.pk else None,
            expires_at=expires_at,
            allowed_models=sorted(set(allowed_models or [])),
            rpm_limit=rpm_limit,
            input_tpm_limit=input_tpm_limit,
            output_tpm_limit=output_tpm_limit,
        )
        audit_event_record(
            actor,
            action="proxy_key.created",
            object_type="proxy_key",
            object_id=proxy_key.pk,
            object_repr=str(proxy_key),
            request=request,
            changes={
                "project": project.name,
                "cost_center": cost_center.code,
                "owner": owner.email if owner else None,
            },
        )
        config_changed_notify(tenant)
    return proxy_key, key


def proxy_key_revoke(
    actor: User | None,
    *,
    tenant: Tenant,
    proxy_key: ProxyKey,
    request: HttpRequest | None = None,
) -> ProxyKey:
    """Revoke a proxy key for good. Admins revoke any key; members only keys they own."""
    if (
        actor is not None
        and not actor.is_admin
        and (not actor.has_role(Role.MEMBER) or proxy_key.owner_id != actor.pk)
    ):
        raise PermissionDenied("Only owners, admins and the key's owner can revoke it.")
    if proxy_key.revoked_at is not None:
        return proxy_key
    with transaction.atomic():
        updated = ProxyKey.objects.filter(pk=proxy_key.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        proxy_key.refresh_from_db(fields=["revoked_at"])
        if updated:
            audit_event_record(
                actor,
                action="proxy_key.revoked",
                object_type="proxy_key",
                object_id=proxy_key.pk,
                object_repr=str(proxy_key),
                request=request,
            )
            config_changed_notify(tenant)
    return proxy_key


def proxy_key_last_used_record(seen: Mapping[uuid.UUID, datetime]) -> int:
    """Store last-used times collected by the proxy (batched, not one write per request)."""
    updated = 0
    for key_id, used_at in seen.items():
        updated += ProxyKey.objects.filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=used_at), pk=key_id
        ).update(last_used_at=used_at)
    return updated
