import zoneinfo

from django import forms
from django.utils.text import slugify

from tenants.models import Tenant

TIME_ZONE_CHOICES = [(name, name) for name in sorted(zoneinfo.available_timezones())]


class SignupForm(forms.Form):
    company_name = forms.CharField(max_length=200)
    slug = forms.CharField(
        max_length=40,
        required=False,
        label="Subdomain",
        help_text="Your address will be <subdomain>.<our domain>. Leave blank to derive it.",
    )
    name = forms.CharField(max_length=150, label="Your name")
    email = forms.EmailField(label="Work email")
    password = forms.CharField(widget=forms.PasswordInput, strip=False)
    is_adult = forms.BooleanField(
        label="I am 18 or older", error_messages={"required": "You must be 18 or older."}
    )
    accepts_policy = forms.BooleanField(
        label="I accept the privacy policy",
        error_messages={"required": "You must accept the privacy policy."},
    )

    def clean_slug(self) -> str:
        slug: str = self.cleaned_data.get("slug") or ""
        if not slug:
            slug = slugify(self.data.get("company_name", ""))[:40].strip("-")
        return slug.lower()


class TenantSettingsForm(forms.ModelForm):
    time_zone = forms.ChoiceField(choices=TIME_ZONE_CHOICES)

    class Meta:
        model = Tenant
        fields = ["time_zone", "week_starts_on", "privacy_mode", "require_mfa_for_admins"]
        labels = {
            "privacy_mode": "Privacy Mode (store only a SHA-256 hash of each prompt)",
            "require_mfa_for_admins": "Require two-factor authentication for owners and admins",
        }
