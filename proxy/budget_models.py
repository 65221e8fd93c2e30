"""Budgets, their threshold alerts, in-app notifications and a tenant's spend settings."""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

DEFAULT_THRESHOLDS = [50, 80, 100]


def default_thresholds() -> list[int]:
    return list(DEFAULT_THRESHOLDS)


class Budget(models.Model):
    """A spend limit in USD per calendar period on the tenant, a project, a cost center, a proxy
    key or a key owner. At 100 % it either only alerts or blocks further requests."""

    class Scope(models.TextChoices):
        TENANT = "tenant", "Whole workspace"
        PROJECT = "project", "Project"
        COST_CENTER = "cost_center", "Cost center"
        KEY = "key", "Proxy key"
        USER = "user", "Key owner"

    class Period(models.TextChoices):
        DAY = "day", "Day"
        WEEK = "week", "Week"
        MONTH = "month", "Month"

    name = models.CharField(max_length=120)
    scope = models.CharField(max_length=20, choices=Scope.choices)
    project = models.ForeignKey(
        "proxy.Project", null=True, blank=True, on_delete=models.CASCADE, related_name="budgets"
    )
    cost_center = models.ForeignKey(
        "proxy.CostCenter", null=True, blank=True, on_delete=models.CASCADE, related_name="budgets"
    )
    proxy_key = models.ForeignKey(
        "proxy.ProxyKey", null=True, blank=True, on_delete=models.CASCADE, related_name="budgets"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="budgets",
    )
    amount_usd = models.DecimalField(
        max_digits=18, decimal_places=6, validators=[MinValueValidator(Decimal("0.000001"))]
    )
    period = models.CharField(max_length=10, choices=Period.choices, default=Period.MONTH)
    thresholds = models.JSONField(default=default_thresholds)
    block = models.BooleanField(default=False, help_text="Refuse requests at 100 %.")
    extra_recipients = models.TextField(blank=True, help_text="More alert addresses, one a line.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(scope="tenant", project=None, cost_center=None, proxy_key=None, user=None)
                    | Q(scope="project", project__isnull=False)
                    | Q(scope="cost_center", cost_center__isnull=False)
                    | Q(scope="key", proxy_key__isnull=False)
                    | Q(scope="user", user__isnull=False)
                ),
                name="budget_scope_has_target",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def target_id(self) -> object:
        return {
            "tenant": None,
            "project": self.project_id,
            "cost_center": self.cost_center_id,
            "key": self.proxy_key_id,
            "user": self.user_id,
        }[self.scope]

    @property
    def extra_recipient_list(self) -> list[str]:
        parts = self.extra_recipients.replace(",", "\n").splitlines()
        return [part.strip() for part in parts if part.strip()]


class BudgetAlert(models.Model):
    """One threshold crossed in one period: the unique row makes each alert go out once."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    period_start = models.DateTimeField()
    threshold = models.PositiveSmallIntegerField()
    spent_usd = models.DecimalField(max_digits=24, decimal_places=9)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["budget", "period_start", "threshold"], name="budget_alert_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.budget} {self.threshold} % at {self.period_start:%Y-%m-%d}"


class Notification(models.Model):
    """An in-app notice for the workspace: budget thresholds and operational problems."""

    kind = models.CharField(max_length=40)
    title = models.CharField(max_length=200)
    message = models.TextField()
    budget = models.ForeignKey(
        Budget, null=True, blank=True, on_delete=models.SET_NULL, related_name="notifications"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.title


class SpendSettings(models.Model):
    """The workspace's alert webhook and its tenant-wide rate limits (one row)."""

    singleton = models.BooleanField(default=True, unique=True, editable=False)
    webhook_url = models.URLField(
        blank=True, max_length=500, help_text="Slack-compatible incoming webhook for alerts."
    )
    rpm_limit = models.PositiveIntegerField(null=True, blank=True)
    input_tpm_limit = models.PositiveIntegerField(null=True, blank=True)
    output_tpm_limit = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return "Spend settings"


__all__ = ["Budget", "BudgetAlert", "Notification", "SpendSettings"]
