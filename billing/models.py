"""Billing in the public schema: Paddle prices, subscriptions, webhook events, checkout intents."""

import uuid

from django.db import models

from tenants.models import Plan, Tenant


class PaddleEnvironment(models.TextChoices):
    SANDBOX = "sandbox", "Sandbox"
    LIVE = "live", "Live"


class PlanPrice(models.Model):
    """A Paddle price that buys a plan, per Paddle environment (operator-managed in the admin)."""

    class Interval(models.TextChoices):
        MONTH = "month", "Monthly"
        YEAR = "year", "Yearly"

    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="prices")
    environment = models.CharField(max_length=10, choices=PaddleEnvironment.choices)
    paddle_price_id = models.CharField(max_length=64, unique=True, help_text="pri_…")
    interval = models.CharField(max_length=10, choices=Interval.choices, default=Interval.MONTH)
    label = models.CharField(max_length=100, blank=True, help_text="Shown on the button.")
    is_active = models.BooleanField(default=True, help_text="Offered on the Billing page.")

    class Meta:
        ordering = ["plan__sort_order", "interval"]
        constraints = [
            models.UniqueConstraint(
                fields=["plan", "environment", "interval"], name="planprice_one_per_interval"
            )
        ]

    def __str__(self) -> str:
        return f"{self.plan.name} {self.get_interval_display()} ({self.environment})"


class BillingAccount(models.Model):
    """A tenant's link to its Paddle customer, its billing contact and retention notice state."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="billing_account")
    paddle_customer_id = models.CharField(max_length=64, blank=True, db_index=True)
    billing_email = models.EmailField(blank=True)
    billing_name = models.CharField(max_length=200, blank=True)
    customer_updated_at = models.DateTimeField(null=True, blank=True)
    plan_managed_manually = models.BooleanField(
        default=False,
        help_text="Operators set the plan by hand (e.g. Enterprise by contract); "
        "subscription state never changes it.",
    )
    # After a downgrade that shortens retention, purges keep at least `retention_floor_days`
    # until `retention_floor_until` (≥ 7 days after the notice email).
    retention_floor_days = models.PositiveIntegerField(null=True, blank=True)
    retention_floor_until = models.DateTimeField(null=True, blank=True)
    retention_notice_sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Billing account of {self.tenant}"


class Subscription(models.Model):
    """Our copy of a Paddle subscription; `last_event_occurred_at` is the ordering watermark."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        TRIALING = "trialing", "Trialing"
        PAST_DUE = "past_due", "Past due"
        PAUSED = "paused", "Paused"
        CANCELED = "canceled", "Canceled"

    tenant = models.ForeignKey(
        Tenant, on_delete=models.SET_NULL, null=True, blank=True, related_name="subscriptions"
    )
    paddle_subscription_id = models.CharField(max_length=64, unique=True)
    paddle_customer_id = models.CharField(max_length=64, blank=True, db_index=True)
    environment = models.CharField(max_length=10, choices=PaddleEnvironment.choices)
    status = models.CharField(max_length=10, choices=Status.choices)
    paddle_price_id = models.CharField(max_length=64, blank=True)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, null=True, blank=True)
    current_period_starts_at = models.DateTimeField(null=True, blank=True)
    current_period_ends_at = models.DateTimeField(null=True, blank=True)
    scheduled_change_action = models.CharField(max_length=20, blank=True)
    scheduled_change_effective_at = models.DateTimeField(null=True, blank=True)
    past_due_since = models.DateTimeField(null=True, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    last_event_occurred_at = models.DateTimeField(null=True, blank=True)
    synced_from_api_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.paddle_subscription_id} ({self.status})"


class CheckoutIntent(models.Model):
    """A server-issued, single-use, expiring id passed to Paddle.js as customData."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="checkout_intents")
    plan_price = models.ForeignKey(PlanPrice, on_delete=models.PROTECT)
    created_by_email = models.EmailField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    paddle_subscription_id = models.CharField(max_length=64, blank=True)

    def __str__(self) -> str:
        return str(self.id)


class WebhookEvent(models.Model):
    """One Paddle notification, stored once by `event_id` before anything else happens."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSED = "processed", "Processed"
        SKIPPED_STALE = "skipped_stale", "Skipped (stale)"
        IGNORED = "ignored", "Ignored (no effect)"
        FAILED = "failed", "Failed"

    event_id = models.CharField(max_length=64, unique=True)
    event_type = models.CharField(max_length=64, db_index=True)
    occurred_at = models.DateTimeField()
    notification_id = models.CharField(max_length=64, blank=True)
    entity_key = models.CharField(
        max_length=80, db_index=True, help_text="Events with the same key run in occurred_at order."
    )
    payload = models.JSONField()
    received_at = models.DateTimeField()
    status = models.CharField(
        max_length=15, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-occurred_at"]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"


class PlanChange(models.Model):
    """The public audit trail of plan changes that billing made (the tenant log has one too)."""

    tenant = models.ForeignKey(
        Tenant, on_delete=models.SET_NULL, null=True, blank=True, related_name="plan_changes"
    )
    tenant_slug = models.CharField(max_length=40)
    old_plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    new_plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=200)
    subscription = models.ForeignKey(Subscription, on_delete=models.SET_NULL, null=True, blank=True)
    changed_at = models.DateTimeField()

    class Meta:
        ordering = ["-changed_at"]

    def __str__(self) -> str:
        return f"{self.tenant_slug}: {self.old_plan} → {self.new_plan}"


class BillingEmail(models.Model):
    """Each of our billing emails is sent once per key (e.g. payment_received:txn_…)."""

    key = models.CharField(max_length=120, unique=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.SET_NULL, null=True, blank=True)
    sent_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.key
