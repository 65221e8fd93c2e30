from typing import Any

from django import forms

from accounts.models import User
from proxy.budget_models import Budget
from proxy.models import CostCenter, Project, ProxyKey


class BudgetForm(forms.Form):
    name = forms.CharField(max_length=120)
    scope = forms.ChoiceField(choices=Budget.Scope.choices, initial=Budget.Scope.TENANT)
    project = forms.ModelChoiceField(queryset=Project.objects.none(), required=False)
    cost_center = forms.ModelChoiceField(
        queryset=CostCenter.objects.none(), required=False, label="Cost center"
    )
    proxy_key = forms.ModelChoiceField(
        queryset=ProxyKey.objects.none(), required=False, label="Proxy key"
    )
    user = forms.ModelChoiceField(queryset=User.objects.none(), required=False, label="Key owner")
    amount_usd = forms.DecimalField(
        label="Amount (USD)", min_value=0, max_digits=18, decimal_places=6
    )
    period = forms.ChoiceField(choices=Budget.Period.choices, initial=Budget.Period.MONTH)
    thresholds = forms.CharField(
        initial="50, 80, 100", help_text="Alert percentages, separated by commas."
    )
    block = forms.BooleanField(
        required=False, label="Block requests at 100 % (otherwise only alert)"
    )
    extra_recipients = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="More alert recipients",
        help_text="Email addresses, one a line. Owners and admins always get alerts.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = Project.objects.filter(archived_at__isnull=True)  # type: ignore[attr-defined]
        self.fields["cost_center"].queryset = CostCenter.objects.filter(archived_at__isnull=True)  # type: ignore[attr-defined]
        self.fields["proxy_key"].queryset = ProxyKey.objects.filter(revoked_at__isnull=True)  # type: ignore[attr-defined]
        self.fields["user"].queryset = User.objects.filter(is_active=True)  # type: ignore[attr-defined]

    def clean_thresholds(self) -> list[int]:
        try:
            levels = [int(part) for part in self.cleaned_data["thresholds"].split(",") if part]
        except ValueError:
            raise forms.ValidationError("Use whole percentages, e.g. 50, 80, 100.") from None
        return levels

    def clean_extra_recipients(self) -> str:
        value: str = self.cleaned_data["extra_recipients"]
        addresses = [part.strip() for part in value.replace(",", "\n").splitlines() if part.strip()]
        for address in addresses:
            forms.EmailField().clean(address)
        return "\n".join(addresses)

    def service_kwargs(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        scope = data["scope"]
        target_field = {"key": "proxy_key"}.get(scope, scope)
        target = data.get(target_field) if scope != "tenant" else None
        for name in ("project", "cost_center", "proxy_key", "user"):
            data.pop(name, None)
        data["target"] = target
        return data

    @staticmethod
    def initial_for(budget: Budget) -> dict[str, Any]:
        return {
            "name": budget.name,
            "scope": budget.scope,
            "project": budget.project_id,
            "cost_center": budget.cost_center_id,
            "proxy_key": budget.proxy_key_id,
            "user": budget.user_id,
            "amount_usd": budget.amount_usd,
            "period": budget.period,
            "thresholds": ", ".join(str(t) for t in budget.thresholds),
            "block": budget.block,
            "extra_recipients": budget.extra_recipients,
        }


class SpendSettingsForm(forms.Form):
    webhook_url = forms.URLField(
        required=False,
        assume_scheme="https",
        max_length=500,
        label="Alert webhook URL",
        help_text='Slack-compatible incoming webhook; alerts are posted as {"text": …}.',
    )
    rpm_limit = forms.IntegerField(required=False, min_value=1, label="Requests per minute")
    input_tpm_limit = forms.IntegerField(
        required=False, min_value=1, label="Input tokens per minute"
    )
    output_tpm_limit = forms.IntegerField(
        required=False, min_value=1, label="Output tokens per minute"
    )
