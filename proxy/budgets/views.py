"""Budgets and Notifications pages: viewers read, admins change."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.permissions import admin_required, viewer_required
from proxy.budget_models import Budget
from proxy.budgets import selectors, services
from proxy.budgets.forms import BudgetForm, SpendSettingsForm
from proxy.views import FAILED, _run


def _page(request: HttpRequest, form: BudgetForm | None = None, **extra: object) -> HttpResponse:
    admin = request.user.is_admin  # type: ignore[union-attr]
    row = selectors.spend_settings()
    settings_initial = {
        name: getattr(row, name, None)
        for name in ("webhook_url", "rpm_limit", "input_tpm_limit", "output_tpm_limit")
    }
    context = {
        "rows": selectors.budget_progress_list(request.tenant),  # type: ignore[attr-defined]
        "form": (form or BudgetForm()) if admin else None,
        "settings_form": SpendSettingsForm(initial=settings_initial) if admin else None,
        "webhook_set": bool(row and row.webhook_url),
        **extra,
    }
    return render(request, "budgets/list.html", context)


@never_cache
@viewer_required
def budgets(request: HttpRequest) -> HttpResponse:
    return _page(request)


@admin_required
@require_POST
def budget_create(request: HttpRequest) -> HttpResponse:
    form = BudgetForm(request.POST)
    if form.is_valid():
        result = _run(request, form, services.budget_create, **form.service_kwargs())
        if result is not FAILED:
            messages.success(request, f"Budget {result.name} created.")
            return redirect("budgets")
    return _page(request, form)


@admin_required
def budget_edit(request: HttpRequest, budget_id: int) -> HttpResponse:
    budget = get_object_or_404(Budget, pk=budget_id)
    form = BudgetForm(request.POST or None, initial=BudgetForm.initial_for(budget))
    if request.method == "POST" and form.is_valid():
        kwargs = form.service_kwargs()
        if _run(request, form, services.budget_update, budget=budget, **kwargs) is not FAILED:
            messages.success(request, f"Budget {budget.name} saved.")
            return redirect("budgets")
    return render(request, "budgets/edit.html", {"form": form, "budget": budget})


@admin_required
@require_POST
def budget_delete(request: HttpRequest, budget_id: int) -> HttpResponse:
    budget = get_object_or_404(Budget, pk=budget_id)
    if _run(request, None, services.budget_delete, budget=budget) is not FAILED:
        messages.success(request, f"Budget {budget.name} deleted.")
    return redirect("budgets")


@admin_required
@require_POST
def spend_settings(request: HttpRequest) -> HttpResponse:
    form = SpendSettingsForm(request.POST)
    update = services.spend_settings_update
    if form.is_valid() and _run(request, form, update, **form.cleaned_data) is not FAILED:
        messages.success(request, "Alert webhook and rate limits saved.")
        return redirect("budgets")
    messages.error(request, "The webhook and rate limits were not saved: check the values.")
    return redirect("budgets")


@never_cache
@viewer_required
def notifications(request: HttpRequest) -> HttpResponse:
    return render(
        request, "budgets/notifications.html", {"notifications": selectors.notification_list()}
    )
