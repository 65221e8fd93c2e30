"""Operator admin: plan prices, billing accounts, subscriptions and webhook events (replay)."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from billing.models import (
    BillingAccount,
    BillingEmail,
    CheckoutIntent,
    PlanChange,
    PlanPrice,
    Subscription,
    WebhookEvent,
)
from billing.services import tenant_entitlement_apply, webhook_event_replay


@admin.register(PlanPrice)
class PlanPriceAdmin(admin.ModelAdmin):
    list_display = ["plan", "environment", "interval", "paddle_price_id", "label", "is_active"]
    list_filter = ["environment", "interval", "is_active", "plan"]
    search_fields = ["paddle_price_id", "label"]


@admin.register(BillingAccount)
class BillingAccountAdmin(admin.ModelAdmin):
    list_display = [
        "tenant",
        "paddle_customer_id",
        "billing_email",
        "plan_managed_manually",
        "retention_floor_days",
        "retention_floor_until",
    ]
    list_filter = ["plan_managed_manually"]
    search_fields = ["tenant__slug", "tenant__name", "paddle_customer_id", "billing_email"]
    readonly_fields = [
        "customer_updated_at",
        "retention_notice_sent_at",
        "created_at",
        "updated_at",
    ]


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = [
        "paddle_subscription_id",
        "tenant",
        "status",
        "plan",
        "current_period_ends_at",
        "scheduled_change_action",
        "last_event_occurred_at",
    ]
    list_filter = ["status", "environment", "plan"]
    search_fields = ["paddle_subscription_id", "paddle_customer_id", "tenant__slug"]
    readonly_fields = [
        "paddle_subscription_id",
        "paddle_customer_id",
        "environment",
        "status",
        "paddle_price_id",
        "plan",
        "current_period_starts_at",
        "current_period_ends_at",
        "scheduled_change_action",
        "scheduled_change_effective_at",
        "past_due_since",
        "paused_at",
        "canceled_at",
        "last_event_occurred_at",
        "synced_from_api_at",
        "created_at",
        "updated_at",
    ]
    actions = ["entitlement_apply"]

    @admin.action(description="Re-derive the tenant's plan from the subscription")
    def entitlement_apply(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        changed = 0
        for sub in queryset.select_related("tenant"):
            if sub.tenant is not None and tenant_entitlement_apply(sub.tenant) is not None:
                changed += 1
        self.message_user(request, f"{changed} plan(s) changed.")


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    list_display = [
        "event_id",
        "event_type",
        "occurred_at",
        "status",
        "attempts",
        "note",
        "received_at",
    ]
    list_filter = ["status", "event_type"]
    search_fields = ["event_id", "notification_id", "entity_key"]
    readonly_fields = [
        "event_id",
        "event_type",
        "occurred_at",
        "notification_id",
        "entity_key",
        "payload",
        "received_at",
        "status",
        "processed_at",
        "attempts",
        "last_error",
        "note",
    ]
    actions = ["replay"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Replay the selected events (process again)")
    def replay(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        outcomes: dict[str, int] = {}
        for event in queryset.order_by("occurred_at", "id"):
            status = webhook_event_replay(event)
            outcomes[status] = outcomes.get(status, 0) + 1
        summary = ", ".join(f"{count} {status}" for status, count in sorted(outcomes.items()))
        self.message_user(request, f"Replayed: {summary or 'nothing'}.", messages.INFO)


@admin.register(CheckoutIntent)
class CheckoutIntentAdmin(admin.ModelAdmin):
    list_display = ["id", "tenant", "plan_price", "created_at", "expires_at", "used_at"]
    search_fields = ["id", "tenant__slug", "paddle_subscription_id"]
    readonly_fields = [
        "id",
        "tenant",
        "plan_price",
        "created_by_email",
        "created_at",
        "expires_at",
        "used_at",
        "paddle_subscription_id",
    ]


@admin.register(PlanChange)
class PlanChangeAdmin(admin.ModelAdmin):
    list_display = ["tenant_slug", "old_plan", "new_plan", "reason", "changed_at"]
    search_fields = ["tenant_slug"]
    readonly_fields = [
        "tenant",
        "tenant_slug",
        "old_plan",
        "new_plan",
        "reason",
        "subscription",
        "changed_at",
    ]


@admin.register(BillingEmail)
class BillingEmailAdmin(admin.ModelAdmin):
    list_display = ["key", "tenant", "sent_at"]
    search_fields = ["key"]
    readonly_fields = ["key", "tenant", "sent_at"]
