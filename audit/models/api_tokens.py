"""API tokens: created by admins, shown once, stored as a SHA-256 hash, revocable."""

import hashlib

from django.conf import settings
from django.db import models
from django.utils import timezone

API_TOKEN_PREFIX = "tsa_"  # noqa: S105 - a public prefix, not a secret


def api_token_hash(token: str) -> str:
    """Stored form of an API token (tokens carry 256 random bits, so a plain hash suffices)."""
    return hashlib.sha256(token.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def active(self) -> "ApiTokenQuerySet":
        return self.filter(revoked_at__isnull=True)


class ApiToken(models.Model):
    """A bearer token for /api/v1/ acting as `user`, limited to `scope` (read or write)."""

    class Scope(models.TextChoices):
        READ = "read", "Read only"
        WRITE = "write", "Read and write"

    name = models.CharField(max_length=120, blank=True)
    prefix = models.CharField(max_length=40)
    token_hash = models.CharField(max_length=64, unique=True)
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.READ)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name or 'API token'} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
