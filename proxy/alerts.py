"""Operational alerts raised while metering: to operators once per problem, to tenant admins."""

import logging

from django.conf import settings
from django.core.mail import send_mail
from django_tenants.utils import schema_context

from accounts.models import User
from proxy.budgets.alerts import notice_send
from tenants.models import Tenant
from tokenscope.lib.redis import get_redis

logger = logging.getLogger(__name__)


def unpriced_model_alert(model: str, *, tenant_id: int) -> None:
    """A model the price book does not know was used: operators hear once per model, the
    tenant's admins at most hourly. The records stay, unpriced, for `usage_reprice`."""
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is not None:
        notice_send(
            tenant,
            "unpriced_model",
            f"Calls to {model} are recorded but not priced yet: the price book does not know "
            "this model. They will be priced as soon as it does.",
        )
    try:
        first_time = bool(get_redis().set(f"ts:unpriced-model:{model}", "1", nx=True))
    except Exception:
        first_time = True
    if not first_time:
        return
    logger.warning("unpriced model seen: %r", model)  # %r: a model name cannot forge lines
    with schema_context(settings.PUBLIC_SCHEMA_NAME):
        operators = list(
            User.objects.filter(is_staff=True, is_active=True).values_list("email", flat=True)
        )
    if operators:
        send_mail(
            f"[TokenScope] Unpriced model: {model}",
            f"The proxy metered calls to {model}, which has no entry in the price book "
            f"(proxy/pricebook.json). Add its rates, then run `manage.py usage_reprice "
            f"--unpriced` to price the records kept so far.",
            None,
            operators,
        )


def upstream_key_rejected_notice(tenant_id: int) -> None:
    """Anthropic answered 401 to the tenant's own key: its admins should replace it."""
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is not None:
        notice_send(
            tenant,
            "upstream_key_rejected",
            "Anthropic rejected this workspace's API key (HTTP 401). Calls through TokenScope "
            "fail until an owner or admin replaces the key under Anthropic key.",
        )


def key_vault_unreachable_notice(short_id: str) -> None:
    tenant = Tenant.objects.filter(short_id=short_id).first()
    if tenant is not None:
        notice_send(
            tenant,
            "key_vault_unreachable",
            "The key vault holding this workspace's Anthropic key could not be reached; calls "
            "were refused with 503 until it answered again.",
        )
