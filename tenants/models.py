import secrets
import zoneinfo

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django_tenants.models import DomainMixin, TenantMixin

SLUG_VALIDATOR = RegexValidator(
    r"^[a-z][a-z0-9-]{1,38}[a-z0-9]$",
    "Use 3–40 lowercase letters, digits or hyphens, starting with a letter.",
)
# Host names that would collide with our own services.
RESERVED_SLUGS = frozenset(
    {"www", "api", "admin", "app", "mail", "static", "public", "billing", "privacy", "status"}
)
SHORT_ID_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"


def new_short_id() -> str:
    return "".join(secrets.choice(SHORT_ID_ALPHABET) for _ in range(10))


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone.")


class Plan(models.Model):  # type: ignore[django-manager-missing]
    class Slug(models.TextChoices):
        FREE = "free", "Free"
        STARTUP = "startup", "Startup"
        TEAM = "team", "Team"
        BUSINESS = "business", "Business"
        ENTERPRISE = "enterprise", "Enterprise"

    slug = models.CharField(max_length=20, choices=Slug.choices, unique=True)
    name = models.CharField(max_length=60)
    retention_days = models.PositiveIntegerField(
        help_text="How long usage records and audit events are kept."
    )
    member_limit = models.PositiveIntegerField(null=True, blank=True)
    proxy_key_limit = models.PositiveIntegerField(null=True, blank=True)
    monthly_request_limit = models.PositiveBigIntegerField(null=True, blank=True)
    has_data_residency = models.BooleanField(default=False)
    sort_order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["sort_order"]

    def __str__(self) -> str:
        return self.name


class TenantQuerySet(models.QuerySet["Tenant"]):
    def active(self) -> "TenantQuerySet":
        return self.filter(status=Tenant.Status.ACTIVE)

    def customers(self) -> "TenantQuerySet":
        return self.exclude(schema_name="public")


class Tenant(TenantMixin):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"
        DELETING = "deleting", "Deleting"

    class Region(models.TextChoices):
        US_EAST = "us-east", "US East"
        EU = "eu", "EU"
        APAC = "apac", "APAC"

    class WeekStart(models.TextChoices):
        MONDAY = "monday", "Monday"
        SUNDAY = "sunday", "Sunday"

    name = models.CharField(max_length=200)
    slug = models.CharField(max_length=40, unique=True, validators=[SLUG_VALIDATOR])
    short_id = models.CharField(max_length=16, unique=True, default=new_short_id, editable=False)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="tenants")
    privacy_mode = models.BooleanField(
        default=False, help_text="Store only a SHA-256 hash of each prompt, never its text."
    )
    retention_days_override = models.PositiveIntegerField(
        null=True, blank=True, help_text="A shorter retention than the plan's, set by an owner."
    )
    require_mfa_for_admins = models.BooleanField(default=False)
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    week_starts_on = models.CharField(
        max_length=10, choices=WeekStart.choices, default=WeekStart.MONDAY
    )
    region = models.CharField(max_length=10, choices=Region.choices, default=Region.US_EAST)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)

    auto_create_schema = True
    auto_drop_schema = True

    objects = TenantQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(retention_days_override__isnull=True)
                | models.Q(retention_days_override__gte=1),
                name="tenant_retention_override_positive",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    @property
    def retention_days(self) -> int:
        plan_days = self.plan.retention_days
        if self.retention_days_override:
            return min(plan_days, self.retention_days_override)
        return plan_days


class Domain(DomainMixin):
    def __str__(self) -> str:
        return self.domain
