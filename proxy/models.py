"""Workspace objects of a tenant: cost centers, projects, Anthropic credentials and proxy keys."""

import hashlib
import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

ANTHROPIC_KEY_PURPOSE = "anthropic_api_key"


class ArchivableQuerySet(models.QuerySet[Any]):
    def active(self) -> "ArchivableQuerySet":
        return self.filter(archived_at__isnull=True)


class CostCenter(models.Model):
    """Where spend is charged: a code the finance team knows, and who answers for it."""

    code = models.CharField(max_length=40, unique=True)
    name = models.CharField(max_length=120)
    owner_email = models.EmailField(blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ArchivableQuerySet.as_manager()

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} · {self.name}"

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None


class Project(models.Model):
    """A piece of work that calls Claude; its purpose text is later used to score relevance."""

    name = models.CharField(max_length=120, unique=True)
    purpose = models.TextField(blank=True)
    default_cost_center = models.ForeignKey(
        CostCenter, null=True, blank=True, on_delete=models.PROTECT, related_name="projects"
    )
    archived_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ArchivableQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None


class AnthropicCredential(models.Model):
    """An Anthropic API key, envelope-encrypted (AES-256-GCM data key wrapped by the KEK).

    `project` null is the tenant default. Only `hint` (last 4 characters) is ever shown.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.PROTECT, related_name="credentials"
    )
    purpose = models.CharField(max_length=40, default=ANTHROPIC_KEY_PURPOSE, editable=False)
    enc_version = models.PositiveSmallIntegerField(default=1)
    alg = models.CharField(max_length=16, default="A256GCM")
    kek_id = models.CharField(max_length=300)
    wrap_alg = models.CharField(max_length=20)
    wrapped_dek = models.BinaryField()
    nonce = models.BinaryField()
    ciphertext = models.BinaryField()
    hint = models.CharField(max_length=4)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    rotated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["purpose", "project"], name="proxy_credential_one_per_project"
            ),
            models.UniqueConstraint(
                fields=["purpose"],
                condition=Q(project__isnull=True),
                name="proxy_credential_one_tenant_default",
            ),
        ]

    def __str__(self) -> str:
        scope = self.project.name if self.project_id else "tenant default"  # type: ignore[union-attr]
        return f"Anthropic key …{self.hint} ({scope})"

    @property
    def masked(self) -> str:
        return f"sk-ant-…{self.hint}"


class ProxyKeyQuerySet(models.QuerySet["ProxyKey"]):
    def usable(self) -> "ProxyKeyQuerySet":
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )


class ProxyKey(models.Model):
    """A key clients send to the proxy, `tsk_<tenant short id>_<secret>`; only its hash is kept.

    Attribution comes from the key: project and cost center are required.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=120, blank=True)
    prefix = models.CharField(max_length=40)
    key_hash = models.CharField(max_length=64, unique=True)
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="proxy_keys")
    cost_center = models.ForeignKey(CostCenter, on_delete=models.PROTECT, related_name="proxy_keys")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="proxy_keys",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    allowed_models = models.JSONField(default=list, blank=True)
    rpm_limit = models.PositiveIntegerField(null=True, blank=True)
    input_tpm_limit = models.PositiveIntegerField(null=True, blank=True)
    output_tpm_limit = models.PositiveIntegerField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = ProxyKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name or 'Proxy key'} ({self.prefix}…)"

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return "expired"
        return "active"

    @property
    def is_usable(self) -> bool:
        return self.status == "active"

    def allows_model(self, model: str) -> bool:
        return not self.allowed_models or model in self.allowed_models


PROXY_KEY_PREFIX = "tsk_"


def proxy_key_hash(key: str) -> str:
    """The stored form of a proxy key: SHA-256 hex (keys carry 256 bits of randomness)."""
    return hashlib.sha256(key.encode()).hexdigest()


def proxy_key_tenant_short_id(key: str) -> str | None:
    """The tenant short id embedded in `tsk_<short id>_<secret>`, or None if malformed."""
    if not key.startswith(PROXY_KEY_PREFIX):
        return None
    short_id, sep, secret = key[len(PROXY_KEY_PREFIX) :].partition("_")
    if not sep or not short_id.isalnum() or len(secret) < 32:
        return None
    return short_id


from proxy.batch_models import ProxyBatch  # noqa: E402,F401  (one module per concern)
from proxy.budget_models import Budget, BudgetAlert, Notification, SpendSettings  # noqa: E402,F401
