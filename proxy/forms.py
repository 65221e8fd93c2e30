from typing import Any

from django import forms

from accounts.models import User
from proxy.models import CostCenter, Project


class CostCenterForm(forms.Form):
    code = forms.CharField(
        max_length=40, help_text="The code your finance team uses, e.g. CC-1200."
    )
    name = forms.CharField(max_length=120)
    owner_email = forms.EmailField(required=False, label="Owner email")


class ProjectForm(forms.Form):
    name = forms.CharField(max_length=120)
    purpose = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What this project uses Claude for.",
    )
    default_cost_center = forms.ModelChoiceField(
        queryset=CostCenter.objects.none(), required=False, label="Default cost center"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["default_cost_center"]
        field.queryset = CostCenter.objects.filter(archived_at__isnull=True)  # type: ignore[attr-defined]


class AnthropicKeyForm(forms.Form):
    key = forms.CharField(
        label="Anthropic API key",
        max_length=300,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Starts with sk-ant-api03-. Stored encrypted; only its last 4 characters are "
        "shown again.",
    )
    project = forms.ModelChoiceField(
        queryset=Project.objects.none(),
        required=False,
        empty_label="Tenant default (every project without its own key)",
    )
    verify = forms.BooleanField(
        required=False, initial=True, label="Check the key with Anthropic before saving"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["project"]
        field.queryset = Project.objects.filter(archived_at__isnull=True)  # type: ignore[attr-defined]


class ProxyKeyForm(forms.Form):
    name = forms.CharField(max_length=120, required=False, help_text="e.g. 'CI pipeline'.")
    project = forms.ModelChoiceField(queryset=Project.objects.none())
    cost_center = forms.ModelChoiceField(
        queryset=CostCenter.objects.none(),
        required=False,
        help_text="Leave empty to use the project's default cost center.",
    )
    owner = forms.ModelChoiceField(queryset=User.objects.none(), required=False)
    expires_at = forms.DateTimeField(
        required=False,
        label="Expires at (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    allowed_models = forms.CharField(
        required=False, help_text="Comma-separated model ids; empty allows every model."
    )
    rpm_limit = forms.IntegerField(required=False, min_value=1, label="Requests per minute")
    input_tpm_limit = forms.IntegerField(
        required=False, min_value=1, label="Input tokens per minute"
    )
    output_tpm_limit = forms.IntegerField(
        required=False, min_value=1, label="Output tokens per minute"
    )

    def __init__(self, *args: Any, actor: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = Project.objects.filter(  # type: ignore[attr-defined]
            archived_at__isnull=True
        )
        self.fields["cost_center"].queryset = CostCenter.objects.filter(  # type: ignore[attr-defined]
            archived_at__isnull=True
        )
        if actor.is_admin:
            self.fields["owner"].queryset = User.objects.filter(  # type: ignore[attr-defined]
                is_active=True
            ).order_by("email")
        else:
            del self.fields["owner"]  # members' keys are always their own

    def clean_allowed_models(self) -> list[str]:
        raw = self.cleaned_data.get("allowed_models") or ""
        return sorted({item.strip() for item in raw.split(",") if item.strip()})

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        project = data.get("project")
        if project is not None and data.get("cost_center") is None:
            if project.default_cost_center is None or project.default_cost_center.is_archived:
                self.add_error("cost_center", "Choose a cost center (the project has no default).")
            else:
                data["cost_center"] = project.default_cost_center
        return data
