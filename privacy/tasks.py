"""Privacy jobs. Beat runs the public ones daily; each is idempotent and safe to retry."""

import hashlib
import logging

from celery import shared_task

from privacy.models import PolicyVersion, PrivacyRequest
from tenants.models import Tenant

logger = logging.getLogger(__name__)

# Per-tenant purges are spread over this many seconds after the nightly fan-out.
PURGE_JITTER_SECONDS = 2 * 60 * 60


def purge_countdown(tenant: Tenant) -> int:
    """A stable per-tenant delay, so tenants don't all purge at the same moment."""
    digest = hashlib.sha256(tenant.short_id.encode()).digest()
    return int.from_bytes(digest[:4], "big") % PURGE_JITTER_SECONDS


@shared_task
def policy_notify_all(policy_id: int) -> int:
    """Fan out one notice task per tenant."""
    tenants = list(Tenant.objects.customers().values_list("pk", flat=True))
    for tenant_id in tenants:
        policy_notify_tenant.delay(policy_id, tenant_id)
    return len(tenants)


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def policy_notify_tenant(policy_id: int, tenant_id: int) -> int:
    from privacy.services import policy_notices_send

    policy = PolicyVersion.objects.get(pk=policy_id)
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return 0
    return policy_notices_send(policy, tenant)


@shared_task
def privacy_requests_expire() -> int:
    from privacy.services import privacy_requests_expire as expire

    return expire()


@shared_task
def privacy_request_execute_task(request_id: int) -> list[str]:
    from privacy.services import privacy_request_execute

    req = PrivacyRequest.objects.get(pk=request_id)
    return privacy_request_execute(req)


@shared_task
def retention_purge_schedule() -> int:
    """Nightly: schedule one jittered purge per tenant, and drop expired public rows."""
    from privacy.retention import expired_purge

    expired_purge()
    tenants = list(Tenant.objects.customers().filter(status=Tenant.Status.ACTIVE))
    for tenant in tenants:
        retention_purge_tenant.apply_async(args=[tenant.pk], countdown=purge_countdown(tenant))
    return len(tenants)


@shared_task
def retention_purge_tenant(tenant_id: int) -> dict[str, int]:
    from privacy.retention import retention_purge

    tenant = Tenant.objects.filter(pk=tenant_id).select_related("plan").first()
    if tenant is None:
        return {}
    return retention_purge(tenant)


@shared_task
def deletions_run() -> int:
    from privacy.deletion import deletions_run as run

    return run()
