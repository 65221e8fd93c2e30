import logging
from typing import Any

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django_tenants.utils import schema_context

from accounts.models import Role, User
from audit.services import audit_event_record
from tenants.models import RESERVED_SLUGS, SLUG_VALIDATOR, Domain, Plan, Tenant
from tokenscope.lib.errors import DomainError

logger = logging.getLogger(__name__)


def tenant_host(tenant: Tenant) -> str:
    return f"{tenant.slug}.{settings.BASE_DOMAIN}"


def tenant_url(tenant: Tenant, path: str = "/") -> str:
    """The absolute URL of a page on the tenant's own host."""
    port = f":{settings.PUBLIC_PORT}" if settings.PUBLIC_PORT else ""
    return f"{settings.PUBLIC_SCHEME}://{tenant_host(tenant)}{port}{path}"


def schema_name_for(slug: str) -> str:
    return "t_" + slug.replace("-", "_")


def tenant_slug_validate(slug: str) -> str:
    """Check a requested slug: shape, reserved names and uniqueness."""
    slug = slug.strip().lower()
    try:
        SLUG_VALIDATOR(slug)
    except ValidationError as exc:
        raise DomainError(exc.messages[0], field="slug") from exc
    if slug in RESERVED_SLUGS:
        raise DomainError("This address is reserved; choose another.", field="slug")
    if Tenant.objects.filter(slug=slug).exists():
        raise DomainError("This address is already taken; choose another.", field="slug")
    return slug


def tenant_create(
    *,
    name: str,
    slug: str,
    owner_email: str,
    owner_password: str,
    owner_name: str = "",
    plan_slug: str = Plan.Slug.FREE,
    region: str | None = None,
    owner_email_verified: bool = False,
) -> Tenant:
    """Create a tenant with its schema, its subdomain and its owner."""
    from allauth.account.models import EmailAddress

    slug = tenant_slug_validate(slug)
    region = region or settings.REGION
    if region != settings.REGION:
        raise DomainError(
            f"This deployment serves the {settings.REGION} region only.", field="region"
        )
    try:
        plan = Plan.objects.get(slug=plan_slug)
    except Plan.DoesNotExist as exc:
        raise DomainError(f"Unknown plan {plan_slug!r}.", field="plan") from exc
    owner_email = owner_email.strip().lower()
    probe = User(email=owner_email, name=owner_name)
    try:
        validate_password(owner_password, user=probe)
    except ValidationError as exc:
        raise DomainError(" ".join(exc.messages), field="password") from exc

    # Schema creation runs migrations: DDL in one transaction, so a failure leaves nothing.
    with transaction.atomic():
        tenant = Tenant(
            name=name.strip(),
            slug=slug,
            schema_name=schema_name_for(slug),
            plan=plan,
            region=region,
        )
        tenant.save(verbosity=0)
        Domain.objects.create(domain=tenant_host(tenant), tenant=tenant, is_primary=True)
        with schema_context(tenant.schema_name):
            owner = User.objects.create_user(
                owner_email, owner_password, name=owner_name.strip(), role=Role.OWNER
            )
            EmailAddress.objects.create(
                user=owner, email=owner_email, primary=True, verified=owner_email_verified
            )
            audit_event_record(
                owner,
                action="tenant.created",
                object_type="tenant",
                object_id=tenant.short_id,
                object_repr=tenant.name,
            )
    logger.info("tenant created slug=%s schema=%s", tenant.slug, tenant.schema_name)
    return tenant


TENANT_SETTING_FIELDS = ("time_zone", "privacy_mode", "require_mfa_for_admins", "week_starts_on")


def tenant_settings_update(
    tenant: Tenant, *, actor: User, request: HttpRequest | None = None, **values: Any
) -> list[str]:
    """Change tenant settings; each change is recorded with its actor and time."""
    if not actor.has_role(Role.ADMIN):
        raise DomainError("Only owners and admins can change settings.")
    unknown = set(values) - set(TENANT_SETTING_FIELDS)
    if unknown:
        raise DomainError(f"Unknown settings: {', '.join(sorted(unknown))}.")
    changes = {
        field: [getattr(tenant, field), value]
        for field, value in values.items()
        if getattr(tenant, field) != value
    }
    if not changes:
        return []
    for field, (_old, new) in changes.items():
        setattr(tenant, field, new)
    try:
        tenant.full_clean(exclude=["schema_name", "plan", "slug"])
    except ValidationError as exc:
        raise DomainError(" ".join(exc.messages)) from exc
    with transaction.atomic():
        tenant.save(update_fields=list(changes))
        audit_event_record(
            actor,
            action="tenant.settings_changed",
            object_type="tenant",
            object_id=tenant.short_id,
            object_repr=tenant.name,
            request=request,
            changes=changes,
        )
        from proxy.services import config_changed_notify

        # Proxies cache Privacy Mode and the time zone with each key: make them drop it.
        config_changed_notify(tenant)
        if "privacy_mode" in changes:
            audit_event_record(
                actor,
                action="tenant.privacy_mode_on"
                if tenant.privacy_mode
                else "tenant.privacy_mode_off",
                object_type="tenant",
                object_id=tenant.short_id,
                object_repr=tenant.name,
                request=request,
            )
    return list(changes)
