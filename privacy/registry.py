"""The registry of every model field that holds personal data, and of fields that look like it
but do not. `privacy/tests/test_registry.py` walks every installed model and fails when a field
that looks personal (an EmailField, a GenericIPAddressField, or a name like email/ip/name/
user_agent/phone/address) is in neither table: a new model with such a field must be added here.

Register a new model with one line in PERSONAL_DATA (model label: [fields]). Tenant-schema models
are erased with the schema when a tenant is deleted; public-schema models tied to a tenant by a
foreign key are deleted with it (privacy.deletion), and `LEGAL_HOLD` lists public models whose
personal data we keep on purpose, with the reason.
"""

import re

from django.apps import apps
from django.db import models

PERSONAL_DATA: dict[str, list[str]] = {
    # Tenant schemas (and operators in the public schema).
    "accounts.User": ["email", "name", "last_login", "date_joined"],
    "accounts.Invitation": ["email"],
    "account.EmailAddress": ["email"],
    "account.EmailConfirmation": ["email_address"],
    "mfa.Authenticator": ["data"],
    "sessions.Session": ["session_data"],
    "audit.AuditEvent": ["actor", "actor_email", "ip_address", "object_repr", "changes"],
    "audit.UsageRecord": ["key_owner", "ip_address", "user_agent", "prompt_text"],
    "audit.ApiToken": ["user", "created_by"],
    "audit.ExportJob": ["created_by"],
    "proxy.CostCenter": ["owner_email"],
    "proxy.ProxyKey": ["owner", "created_by"],
    "proxy.AnthropicCredential": ["created_by"],
    # Public schema.
    "tenants.Tenant": ["name"],
    "billing.BillingAccount": ["billing_email", "billing_name"],
    "billing.CheckoutIntent": ["created_by_email"],
    "billing.WebhookEvent": ["payload"],
    "privacy.PrivacyRequest": ["email", "name", "details", "notes"],
    "privacy.DataExport": ["content"],
}

# Fields whose names look personal but are not, with the reason.
NOT_PERSONAL: dict[str, dict[str, str]] = {
    "tenants.Plan": {"name": "a plan's name"},
    "tenants.Tenant": {"schema_name": "derived from the slug; dropped with the tenant"},
    "auth.Group": {"name": "a permission group's name"},
    "auth.Permission": {"name": "a permission's name", "codename": "a permission's code"},
    "proxy.Project": {"name": "a project's name"},
    "proxy.CostCenter": {"name": "a cost center's name"},
    "proxy.ProxyKey": {"name": "a key's label"},
    "proxy.Budget": {"name": "a budget's label"},
    "audit.ApiToken": {"name": "a token's label"},
    "billing.PlanChange": {"tenant_slug": "a workspace address, deleted with the tenant"},
    "privacy.PolicyNotice": {"recipient_hmac": "a keyed hash, never the address"},
}

# Public-schema personal data we keep after a tenant is deleted, and why.
LEGAL_HOLD: dict[str, str] = {
    "privacy.PrivacyRequest": "CCPA §7101: records of requests and responses for 24 months",
}

LOOKS_PERSONAL = re.compile(r"(^|_)(e?mail|ip|name|user_agent|useragent|phone|address)(_|$)")


def looks_personal(field: models.Field) -> bool:
    if isinstance(field, models.EmailField | models.GenericIPAddressField):
        return True
    return bool(LOOKS_PERSONAL.search(field.name))


def unregistered_fields() -> list[str]:
    """Fields of installed models that look personal and are in neither table."""
    missing = []
    for model in apps.get_models():
        label = model._meta.label
        known = set(PERSONAL_DATA.get(label, [])) | set(NOT_PERSONAL.get(label, {}))
        for field in model._meta.get_fields():
            if not getattr(field, "concrete", False) or field.name in known:
                continue
            if looks_personal(field):  # type: ignore[arg-type]
                missing.append(f"{label}.{field.name}")
    return missing


def personal_models() -> list[tuple[type[models.Model], list[str]]]:
    """Installed models with their personal fields (unknown labels are skipped)."""
    found = []
    for label, fields in PERSONAL_DATA.items():
        try:
            model = apps.get_model(label)
        except LookupError:
            continue
        found.append((model, fields))
    return found
