"""Privacy models (public schema): policy versions, privacy requests, exports, deletions."""

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def email_hmac(email: str) -> str:
    """A keyed hash of an address: lets us match without keeping the address itself."""
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, email.strip().lower().encode(), hashlib.sha256).hexdigest()


class PolicyVersionQuerySet(models.QuerySet["PolicyVersion"]):
    def in_force(self) -> "PolicyVersionQuerySet":
        return self.filter(effective_at__lte=timezone.now())

    def upcoming(self) -> "PolicyVersionQuerySet":
        return self.filter(effective_at__gt=timezone.now())


class PolicyVersion(models.Model):
    """A published version of the privacy policy; versions are never edited, only superseded."""

    NOTICE_PERIOD = timedelta(days=14)

    version = models.CharField(max_length=40, unique=True, help_text="For example 2026-06-01.")
    text = models.TextField()
    published_at = models.DateTimeField(default=timezone.now)
    effective_at = models.DateTimeField(
        help_text="At least 14 days after publication (the policy's promise of notice)."
    )
    summary = models.CharField(
        max_length=300, blank=True, help_text="What changed, in one sentence (used in the email)."
    )

    objects = PolicyVersionQuerySet.as_manager()

    class Meta:
        ordering = ["-effective_at", "-id"]

    def __str__(self) -> str:
        return f"Privacy policy {self.version}"


class PolicyNotice(models.Model):
    """The sent-log of policy-change emails: one row per version, tenant and recipient."""

    policy = models.ForeignKey(PolicyVersion, on_delete=models.CASCADE, related_name="notices")
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    recipient_hmac = models.CharField(max_length=64)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["policy", "tenant", "recipient_hmac"], name="policy_notice_once"
            )
        ]

    def __str__(self) -> str:
        return f"Notice of {self.policy.version} to tenant {self.tenant_id}"


class PrivacyRequest(models.Model):
    """A data-subject request (GDPR/CCPA); its history is kept in PrivacyRequestEvent."""

    class Type(models.TextChoices):
        ACCESS = "access", "Access a copy of my personal data"
        CORRECTION = "correction", "Correct inaccurate data"
        DELETION = "deletion", "Delete my data"
        AUDIT_EXPORT = "audit_export", "Export of audit logs"
        RESTRICTION = "restriction", "Object to or restrict processing"
        PORTABILITY = "portability", "Data portability"

    class Status(models.TextChoices):
        UNVERIFIED = "unverified", "Awaiting email verification"
        OPEN = "open", "Open"
        APPROVED = "approved", "Approved"
        COMPLETED = "completed", "Completed"
        REJECTED = "rejected", "Rejected"
        EXPIRED = "expired", "Expired (never verified)"

    VERIFY_WINDOW = timedelta(hours=48)
    RESPONSE_WINDOW = timedelta(days=30)

    email = models.EmailField()
    name = models.CharField(max_length=150)
    type = models.CharField(max_length=20, choices=Type.choices)
    details = models.TextField(blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.UNVERIFIED)
    channel = models.CharField(max_length=20, default="web form")
    received_at = models.DateTimeField(default=timezone.now)
    verify_token_hash = models.CharField(max_length=64, blank=True, db_index=True)
    verify_expires_at = models.DateTimeField()
    verified_at = models.DateTimeField(null=True, blank=True)
    ack_sent_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.TextField(blank=True)
    denial_basis = models.TextField(blank=True)
    notes = models.TextField(blank=True, help_text="Operator notes; every change is logged.")

    class Meta:
        ordering = ["due_at", "received_at"]
        indexes = [models.Index(fields=["status", "verify_expires_at"])]

    def __str__(self) -> str:
        return f"Request #{self.pk} ({self.get_type_display()})"

    @property
    def is_overdue(self) -> bool:
        return (
            self.status in (self.Status.OPEN, self.Status.APPROVED)
            and self.due_at is not None
            and self.due_at < timezone.now()
        )


class PrivacyRequestEvent(models.Model):
    """One step in a request's life; rows are only ever added."""

    request = models.ForeignKey(PrivacyRequest, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=40)
    from_status = models.CharField(max_length=12, blank=True)
    to_status = models.CharField(max_length=12, blank=True)
    actor = models.CharField(max_length=100, blank=True, help_text="'system' or an operator id.")
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.kind} at {self.at:%Y-%m-%d %H:%M}"


class DataExport(models.Model):
    """A ZIP of one person's data in one tenant, downloadable once through an expiring link."""

    VALIDITY = timedelta(days=7)

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    subject_user_id = models.BigIntegerField()
    request = models.ForeignKey(
        PrivacyRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="exports"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    content = models.BinaryField(editable=False)
    size = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    expires_at = models.DateTimeField(db_index=True)
    downloaded_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Export {self.pk} for user {self.subject_user_id}"


class ProcessingRestriction(models.Model):
    """A person (a tenant user) who objected: non-essential processing of their data stops."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    user_id = models.BigIntegerField()
    request = models.ForeignKey(
        PrivacyRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    lifted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "user_id"])]

    def __str__(self) -> str:
        return f"Restriction on user {self.user_id} of tenant {self.tenant_id}"


class ScheduledDeletion(models.Model):
    """A tenant's deletion: suspended at once, purged by the daily job once the grace ends."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending (grace period)"
        CANCELLED = "cancelled", "Cancelled"
        COMPLETED = "completed", "Completed"

    tenant = models.ForeignKey(
        "tenants.Tenant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    tenant_short_id = models.CharField(max_length=16, db_index=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    requested_at = models.DateTimeField(default=timezone.now)
    due_at = models.DateTimeField(db_index=True)
    cancel_token_hash = models.CharField(max_length=64, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    subscription_cancel = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"Deletion of tenant {self.tenant_short_id} ({self.status})"


class TenantTombstone(models.Model):
    """Proof that a tenant was deleted; holds no personal data."""

    tenant_short_id = models.CharField(max_length=16, unique=True)
    plan = models.CharField(max_length=20, blank=True)
    created_at = models.DateTimeField(null=True, blank=True, help_text="When the tenant was made.")
    deletion_requested_at = models.DateTimeField()
    purged_at = models.DateTimeField()
    deleted = models.JSONField(default=dict, help_text="What was deleted: schema and row counts.")

    def __str__(self) -> str:
        return f"Tombstone of tenant {self.tenant_short_id}"
