"""Forms of the Classification settings page."""

from typing import Any

from django import forms

from audit.classification.services import MAX_EXAMPLES

EXAMPLES_HELP = f"One example prompt a line, at most {MAX_EXAMPLES}."


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


class CategoryForm(forms.Form):
    """Rename a category, change its description and examples."""

    label = forms.CharField(max_length=80, label="Name")
    description = forms.CharField(
        required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3})
    )
    examples = forms.CharField(
        required=False,
        max_length=MAX_EXAMPLES * 1001,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text=EXAMPLES_HELP,
    )

    def clean_examples(self) -> list[str]:
        return _lines(self.cleaned_data["examples"])

    def service_kwargs(self) -> dict[str, Any]:
        return {
            "label": self.cleaned_data["label"],
            "description": self.cleaned_data["description"],
            "examples": self.cleaned_data["examples"],
        }


class CategoryCreateForm(CategoryForm):
    """Add a custom category: a key, a name, a description and a few examples."""

    key = forms.SlugField(
        max_length=60,
        help_text="Stored on usage records: lower-case letters, digits and underscores.",
    )

    field_order = ["key", "label", "description", "examples"]

    def service_kwargs(self) -> dict[str, Any]:
        return {"key": self.cleaned_data["key"], **super().service_kwargs()}


class ClassificationSettingsForm(forms.Form):
    flag_low_relevance = forms.BooleanField(
        required=False, label="Flag requests with low relevance for review"
    )
    relevance_threshold = forms.FloatField(
        min_value=0.0,
        max_value=1.0,
        label="Relevance threshold",
        help_text="Requests scoring below this (0 to 1) are flagged for review, never blocked.",
        widget=forms.NumberInput(attrs={"step": "0.05", "min": "0", "max": "1"}),
    )
