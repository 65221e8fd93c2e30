from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from privacy.forms import PolicyVersionAdminForm
from privacy.models import (
    DataExport,
    PolicyVersion,
    PrivacyRequest,
    PrivacyRequestEvent,
    ProcessingRestriction,
    ScheduledDeletion,
    TenantTombstone,
)
from privacy.services import (
    policy_version_publish,
    privacy_request_approve,
    privacy_request_complete,
    privacy_request_note,
    privacy_request_reject,
)
from tokenscope.lib.errors import DomainError


def _operator(request: HttpRequest) -> str:
    return f"operator:{request.user.pk}"


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PolicyVersion)
class PolicyVersionAdmin(admin.ModelAdmin):
    """Publishing is adding a version; published versions are never edited or deleted."""

    form = PolicyVersionAdminForm
    list_display = ["version", "published_at", "effective_at", "summary"]
    readonly_fields = ["published_at"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        try:
            published = policy_version_publish(
                version=obj.version,
                text=obj.text,
                effective_at=obj.effective_at,
                summary=obj.summary,
            )
        except DomainError as exc:
            # The form checked the same rule a moment ago; report a race plainly.
            self.message_user(request, exc.message, level=messages.ERROR)
            raise
        obj.pk = published.pk
        obj.published_at = published.published_at


class PrivacyRequestEventInline(admin.TabularInline):
    model = PrivacyRequestEvent
    extra = 0
    can_delete = False
    fields = ["at", "kind", "from_status", "to_status", "actor", "note"]
    readonly_fields = ["at", "kind", "from_status", "to_status", "actor", "note"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PrivacyRequest)
class PrivacyRequestAdmin(admin.ModelAdmin):
    list_display = ["id", "type", "status", "received_at", "verified_at", "due", "completed_at"]
    list_filter = ["status", "type"]
    search_fields = ["email", "name"]
    ordering = ["due_at"]
    fields = [
        "email",
        "name",
        "type",
        "details",
        "status",
        "channel",
        "received_at",
        "verified_at",
        "ack_sent_at",
        "due_at",
        "completed_at",
        "outcome",
        "denial_basis",
        "notes",
    ]
    readonly_fields = [
        "email",
        "name",
        "type",
        "details",
        "status",
        "channel",
        "received_at",
        "verified_at",
        "ack_sent_at",
        "due_at",
        "completed_at",
        "outcome",
        "denial_basis",
    ]
    inlines = [PrivacyRequestEventInline]
    actions = ["approve", "complete", "reject"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Due", ordering="due_at")
    def due(self, obj: PrivacyRequest) -> str:
        if obj.due_at is None:
            return "—"
        if obj.is_overdue:
            return format_html(
                '<strong class="errornote">OVERDUE {}</strong>', f"{obj.due_at:%Y-%m-%d}"
            )
        return f"{obj.due_at:%Y-%m-%d}"

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # Only notes are editable; the change is logged as an event.
        stored = PrivacyRequest.objects.get(pk=obj.pk)
        privacy_request_note(stored, operator=_operator(request), notes=obj.notes)

    def _each(self, request: HttpRequest, queryset: QuerySet, fn: Any, **kwargs: Any) -> None:
        for req in queryset:
            try:
                fn(req, operator=_operator(request), **kwargs)
            except DomainError as exc:
                self.message_user(request, f"#{req.pk}: {exc.message}", level=messages.ERROR)
            else:
                self.message_user(request, f"#{req.pk}: done.")

    @admin.action(description="Approve (runs the automatic actions)")
    def approve(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._each(request, queryset, privacy_request_approve)

    @admin.action(description="Mark completed (answered by hand)")
    def complete(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._each(request, queryset, privacy_request_complete, outcome="answered by an operator")

    @admin.action(description="Reject (write the reasons in the notes first)")
    def reject(self, request: HttpRequest, queryset: QuerySet) -> None:
        for req in queryset:
            try:
                privacy_request_reject(req, operator=_operator(request), basis=req.notes)
            except DomainError as exc:
                self.message_user(request, f"#{req.pk}: {exc.message}", level=messages.ERROR)


@admin.register(DataExport)
class DataExportAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "tenant",
        "subject_user_id",
        "size",
        "created_at",
        "expires_at",
        "downloaded_at",
    ]
    exclude = ["content", "token_hash"]


@admin.register(ProcessingRestriction)
class ProcessingRestrictionAdmin(ReadOnlyAdmin):
    list_display = ["id", "tenant", "user_id", "created_at", "lifted_at"]
    actions = ["lift"]

    @admin.action(description="Lift the restriction")
    def lift(self, request: HttpRequest, queryset: QuerySet) -> None:
        queryset.filter(lifted_at__isnull=True).update(lifted_at=timezone.now())


@admin.register(ScheduledDeletion)
class ScheduledDeletionAdmin(ReadOnlyAdmin):
    list_display = [
        "tenant_short_id",
        "status",
        "requested_at",
        "due_at",
        "completed_at",
        "attempts",
    ]
    list_filter = ["status"]
    exclude = ["cancel_token_hash"]


@admin.register(TenantTombstone)
class TenantTombstoneAdmin(ReadOnlyAdmin):
    list_display = ["tenant_short_id", "plan", "deletion_requested_at", "purged_at"]
