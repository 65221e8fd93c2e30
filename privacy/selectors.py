"""Reads for privacy: policy versions, restrictions, a person's accounts across tenants."""

from dataclasses import dataclass
from datetime import datetime

from django.db import models
from django.db.models import Count
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts.models import Role, User
from privacy.models import PolicyVersion, PrivacyRequest, ProcessingRestriction
from privacy.policy import SEED_VERSION, seed_text
from tenants.models import Tenant


def policy_in_force() -> PolicyVersion:
    """The version in force now (the seeded text if the table is somehow empty)."""
    version = PolicyVersion.objects.in_force().first()
    if version is None:
        return PolicyVersion(version=SEED_VERSION, text=seed_text(), effective_at=timezone.now())
    return version


def policy_upcoming() -> PolicyVersion | None:
    """The next published version that is not yet in force, if any."""
    return PolicyVersion.objects.upcoming().order_by("effective_at").first()


def policy_history() -> list[PolicyVersion]:
    return list(PolicyVersion.objects.all())


def processing_restricted(tenant: Tenant, user_id: int | None) -> bool:
    """True when this tenant user objected: skip non-essential processing (e.g. classification)."""
    if user_id is None:
        return False
    return ProcessingRestriction.objects.filter(
        tenant_id=tenant.pk, user_id=user_id, lifted_at__isnull=True
    ).exists()


@dataclass
class TenantAccount:
    tenant: Tenant
    user_id: int
    role: str


def accounts_with_email(email: str) -> list[TenantAccount]:
    """Every tenant user with this address, searched schema by schema."""
    email = email.strip().lower()
    found = []
    for tenant in Tenant.objects.customers().order_by("pk"):
        with schema_context(tenant.schema_name):
            user = User.objects.filter(email__iexact=email).first()
            if user is not None:
                found.append(TenantAccount(tenant=tenant, user_id=user.pk, role=user.role))
    return found


def tenant_notice_recipients(tenant: Tenant) -> list[str]:
    """Addresses of the tenant's active owners and admins."""
    with schema_context(tenant.schema_name):
        return list(
            User.objects.filter(is_active=True, role__in=[Role.OWNER, Role.ADMIN])
            .order_by("pk")
            .values_list("email", flat=True)
        )


def tenant_owner_emails(tenant: Tenant) -> list[str]:
    with schema_context(tenant.schema_name):
        return list(
            User.objects.filter(is_active=True, role=Role.OWNER).values_list("email", flat=True)
        )


def requests_overdue(now: datetime | None = None) -> int:
    now = now or timezone.now()
    return PrivacyRequest.objects.filter(
        status__in=[PrivacyRequest.Status.OPEN, PrivacyRequest.Status.APPROVED], due_at__lt=now
    ).count()


def platform_totals() -> dict[str, object]:
    """Operator analytics: counts per plan, status and region; never a person."""
    from privacy.adapters import usage_totals_by_plan
    from tenants.models import Plan

    tenants = Tenant.objects.customers()
    usage = usage_totals_by_plan()
    members_by_plan: dict[int, int] = {}
    for tenant in tenants.only("pk", "schema_name", "plan_id"):
        with schema_context(tenant.schema_name):
            count = User.objects.filter(is_active=True).count()
        members_by_plan[tenant.plan_id] = members_by_plan.get(tenant.plan_id, 0) + count
    tenants_by_plan = dict(
        tenants.values_list("plan_id").annotate(n=Count("id")).values_list("plan_id", "n")
    )
    plans = [
        {
            "plan": plan.name,
            "tenants": tenants_by_plan.get(plan.pk, 0),
            "members": members_by_plan.get(plan.pk, 0),
            "requests": usage.get(plan.slug, {}).get("requests"),
            "spend": usage.get(plan.slug, {}).get("spend"),
        }
        for plan in Plan.objects.order_by("sort_order")
    ]
    return {
        "tenants": tenants.count(),
        "members": sum(members_by_plan.values()),
        "plans": plans,
        "by_status": _counts(tenants, "status"),
        "by_region": _counts(tenants, "region"),
        "usage_available": bool(usage),
    }


def _counts(queryset: "models.QuerySet[Tenant]", field: str) -> dict[str, int]:
    rows = queryset.values_list(field).annotate(n=Count("id")).order_by(field)
    return {str(key): n for key, n in rows}
