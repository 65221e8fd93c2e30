"""Filter forms shared by the pages, the exports and the API: one parser, one meaning."""

import uuid
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from audit.models import ApiToken, ExportJob, UsageRecord

SEARCH_MAX_DAYS = 31
GRAINS = ("day", "week", "month")


def _parse_moment(value: str, tz: ZoneInfo, *, end: bool) -> datetime | None:
    """A date (start of that day, or start of the next for `end`) or an ISO datetime."""
    value = value.strip()
    if not value:
        return None
    try:
        moment = parse_datetime(value)
        if moment is None:
            day = parse_date(value)
            if day is None:
                raise ValueError(value)
            moment = datetime.combine(day + timedelta(days=1) if end else day, time.min)
    except (ValueError, OverflowError) as exc:
        raise forms.ValidationError("Enter a date (YYYY-MM-DD) or an ISO 8601 time.") from exc
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=tz)
    if not 2000 <= moment.year <= 2999:
        raise forms.ValidationError("Enter a date between 2000 and 2999.")
    return moment


@dataclass
class UsageFilter:
    since: datetime | None = None
    until: datetime | None = None
    model: str = ""
    project: int | None = None
    cost_center: int | None = None
    proxy_key: uuid.UUID | None = None
    status: str = ""
    category: str = ""
    sensitivity: str = ""
    relevance_min: float | None = None
    relevance_max: float | None = None
    flagged: bool = False
    q: str = ""
    params: dict[str, str] = field(default_factory=dict)


class TenantTimeForm(forms.Form):
    def __init__(self, *args: Any, tz: str = "UTC", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tz = ZoneInfo(tz)

    def clean_since(self) -> datetime | None:
        return _parse_moment(self.cleaned_data.get("since") or "", self.tz, end=False)

    def clean_until(self) -> datetime | None:
        return _parse_moment(self.cleaned_data.get("until") or "", self.tz, end=True)

    def params(self) -> dict[str, str]:
        """The submitted, non-empty filter values (to rebuild links and store in exports)."""
        return {
            name: str(self.data.get(name))
            for name in self.fields
            if self.data.get(name) not in (None, "")
        }


class UsageFilterForm(TenantTimeForm):
    since = forms.CharField(required=False, help_text="Date or ISO time; from.")
    until = forms.CharField(required=False, help_text="Date (inclusive) or ISO time; to.")
    model = forms.CharField(required=False, max_length=100)
    project = forms.IntegerField(required=False, min_value=1, max_value=2**62)
    cost_center = forms.IntegerField(required=False, min_value=1, max_value=2**62)
    proxy_key = forms.UUIDField(required=False)
    status = forms.RegexField(
        required=False, regex=r"^(ok|error|[1-5][0-9][0-9])$", help_text="ok, error or a code"
    )
    category = forms.CharField(required=False, max_length=60)
    sensitivity = forms.ChoiceField(
        required=False, choices=[("", "Any"), *UsageRecord.Sensitivity.choices]
    )
    relevance_min = forms.FloatField(required=False, min_value=0, max_value=1)
    relevance_max = forms.FloatField(required=False, min_value=0, max_value=1)
    flagged = forms.BooleanField(required=False, label="Flagged for review only")
    q = forms.CharField(required=False, max_length=200, label="Search prompts")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        q = (data.get("q") or "").strip()
        if q:
            until = data.get("until") or timezone.now()
            since = data.get("since")
            if since is None:
                data["since"] = until - timedelta(days=SEARCH_MAX_DAYS)
            elif until - since > timedelta(days=SEARCH_MAX_DAYS):
                raise forms.ValidationError(
                    f"A prompt search covers at most {SEARCH_MAX_DAYS} days; narrow the range."
                )
        return data

    def usage_filter(self) -> UsageFilter:
        d = self.cleaned_data
        return UsageFilter(
            since=d.get("since"),
            until=d.get("until"),
            model=(d.get("model") or "").strip(),
            project=d.get("project"),
            cost_center=d.get("cost_center"),
            proxy_key=d.get("proxy_key"),
            status=d.get("status") or "",
            category=(d.get("category") or "").strip(),
            sensitivity=d.get("sensitivity") or "",
            relevance_min=d.get("relevance_min"),
            relevance_max=d.get("relevance_max"),
            flagged=bool(d.get("flagged")),
            q=(d.get("q") or "").strip(),
            params=self.params(),
        )


class DashboardForm(TenantTimeForm):
    since = forms.CharField(required=False)
    until = forms.CharField(required=False)
    grain = forms.ChoiceField(required=False, choices=[(g, g.title()) for g in GRAINS])
    model = forms.CharField(required=False, max_length=100)
    project = forms.IntegerField(required=False, min_value=1, max_value=2**62)
    cost_center = forms.IntegerField(required=False, min_value=1, max_value=2**62)
    proxy_key = forms.UUIDField(required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        now = timezone.now().astimezone(self.tz)
        if not data.get("until"):
            data["until"] = datetime.combine(now.date() + timedelta(days=1), time.min, self.tz)
        if not data.get("since"):
            data["since"] = data["until"] - timedelta(days=30)
        if data["since"] >= data["until"]:
            raise forms.ValidationError("The start must be before the end.")
        if data["until"] - data["since"] > timedelta(days=3700):
            raise forms.ValidationError("Choose a period of at most ten years.")
        data["grain"] = data.get("grain") or "day"
        return data


class SummaryForm(DashboardForm):
    group_by = forms.CharField(required=False, help_text="Comma-separated dimensions.")
    category = forms.CharField(required=False, max_length=60)


class AuditFilterForm(TenantTimeForm):
    since = forms.CharField(required=False)
    until = forms.CharField(required=False)
    action = forms.CharField(required=False, max_length=64)
    actor = forms.CharField(required=False, max_length=254, help_text="Email contains")
    object_type = forms.CharField(required=False, max_length=64)
    ip_address = forms.GenericIPAddressField(required=False)


class ExportRequestForm(forms.Form):
    kind = forms.ChoiceField(choices=ExportJob.Kind.choices)
    format = forms.ChoiceField(choices=ExportJob.Format.choices)


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=120, required=False)
    scope = forms.ChoiceField(choices=ApiToken.Scope.choices, initial=ApiToken.Scope.READ)


class PromptVisibilityForm(forms.Form):
    hide_prompts_from_viewers = forms.BooleanField(
        required=False, label="Hide prompt text from viewers"
    )
