from datetime import timedelta
from typing import Any

from django import forms
from django.utils import timezone

from privacy.models import PolicyVersion, PrivacyRequest
from tenants.models import Plan, Tenant


class PrivacyRequestForm(forms.Form):
    name = forms.CharField(max_length=150, label="Your name")
    email = forms.EmailField(label="Your email", help_text="We send a confirmation link to it.")
    type = forms.ChoiceField(
        choices=[("", "Choose…"), *PrivacyRequest.Type.choices], label="What do you ask for?"
    )
    details = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5}),
        required=False,
        max_length=5000,
        help_text="Anything that helps us, e.g. the workspace you use. No passwords or keys.",
    )
    # A honeypot: people never see it (the `hidden` attribute), bots fill it in.
    website = forms.CharField(required=False, label="Leave this empty")


class PasswordConfirmForm(forms.Form):
    password = forms.CharField(
        widget=forms.PasswordInput, strip=False, label="Your password (to confirm it's you)"
    )


class TenantDeletionForm(PasswordConfirmForm):
    confirm_slug = forms.CharField(max_length=40, label="Type the workspace address to confirm")


class SelfDeleteForm(PasswordConfirmForm):
    confirm = forms.BooleanField(
        label="I understand that my account and personal data are deleted for good"
    )


class DeletionCancelForm(forms.Form):
    email = forms.EmailField(label="Owner email")
    password = forms.CharField(widget=forms.PasswordInput, strip=False)


class RetentionForm(forms.Form):
    retention_days = forms.IntegerField(
        min_value=1,
        required=False,
        label="Keep usage records and audit events for (days)",
        help_text="Leave empty for your plan's period.",
    )

    def __init__(self, *args: Any, plan_days: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plan_days = plan_days
        field = self.fields["retention_days"]
        field.widget.attrs["max"] = plan_days
        field.help_text = (
            f"At most {plan_days} days (your plan). Leave empty for the plan's period."
        )

    def clean_retention_days(self) -> int | None:
        days: int | None = self.cleaned_data.get("retention_days")
        if days is not None and days > self.plan_days:
            raise forms.ValidationError(
                f"Your plan keeps data for {self.plan_days} days; choose that or fewer."
            )
        return days


class PolicyVersionAdminForm(forms.ModelForm):
    class Meta:
        model = PolicyVersion
        fields = ["version", "effective_at", "summary", "text"]

    def clean_effective_at(self) -> Any:
        effective_at = self.cleaned_data["effective_at"]
        earliest = timezone.now() + PolicyVersion.NOTICE_PERIOD
        if effective_at and effective_at < earliest - timedelta(seconds=60):
            raise forms.ValidationError(
                "A new policy takes effect at least 14 days after publication "
                f"(on or after {earliest:%Y-%m-%d %H:%M} UTC)."
            )
        return effective_at


class TenantResidencyAdminForm(forms.ModelForm):
    """Operators may place Enterprise tenants (plans with data residency) in EU or APAC."""

    class Meta:
        model = Tenant
        fields = [
            "name",
            "slug",
            "plan",
            "privacy_mode",
            "retention_days_override",
            "require_mfa_for_admins",
            "time_zone",
            "week_starts_on",
            "region",
            "status",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        region, plan = data.get("region"), data.get("plan")
        residency = plan is not None and (
            plan.has_data_residency or plan.slug == Plan.Slug.ENTERPRISE
        )
        if region and region != Tenant.Region.US_EAST and not residency:
            self.add_error("region", "EU and APAC residency is for Enterprise tenants only.")
        return data
