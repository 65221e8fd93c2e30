"""The Classification settings page: everyone reads the taxonomy, admins change it."""

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.permissions import acting_user, admin_required, viewer_required
from audit.classification import selectors, services
from audit.classification.forms import (
    CategoryCreateForm,
    CategoryForm,
    ClassificationSettingsForm,
)
from audit.models import TenantCategory
from tokenscope.lib.errors import DomainError

FAILED = object()


def _run(request: HttpRequest, form: Any, action: Any, **kwargs: Any) -> Any:
    """Call a service as the signed-in user; a domain error lands on the form or as a message."""
    try:
        return action(acting_user(request), request=request, **kwargs)
    except DomainError as exc:
        if form is None:
            messages.error(request, exc.message)
        else:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
    return FAILED


def _category(key: str) -> TenantCategory:
    selectors.tenant_categories()  # seed the defaults on a first visit
    return get_object_or_404(TenantCategory, key=key)


def _page(request: HttpRequest, **forms: Any) -> HttpResponse:
    settings = selectors.classification_settings()
    admin = acting_user(request).is_admin
    initial = {
        "relevance_threshold": settings.relevance_threshold,
        "flag_low_relevance": settings.flag_low_relevance,
    }
    context: dict[str, Any] = {
        "categories": selectors.tenant_categories(),
        "settings": settings,
        "create_form": None,
        "settings_form": None,
    }
    if admin:
        context["create_form"] = forms.get("create_form") or CategoryCreateForm()
        context["settings_form"] = forms.get("settings_form") or ClassificationSettingsForm(
            initial=initial
        )
    return render(request, "classification/settings.html", context)


@never_cache
@viewer_required
def classification(request: HttpRequest) -> HttpResponse:
    return _page(request)


@admin_required
@require_POST
def category_create(request: HttpRequest) -> HttpResponse:
    form = CategoryCreateForm(request.POST)
    if form.is_valid():
        create = services.tenant_category_create
        created = _run(request, form, create, **form.service_kwargs())
        if created is not FAILED:
            messages.success(request, f"Category {created.label} added.")
            return redirect("classification")
    return _page(request, create_form=form)


@never_cache
@admin_required
def category_edit(request: HttpRequest, key: str) -> HttpResponse:
    category = _category(key)
    initial = {
        "label": category.label,
        "description": category.description,
        "examples": "\n".join(str(example) for example in category.examples or ()),
    }
    form = CategoryForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        update = services.tenant_category_update
        if _run(request, form, update, key=key, **form.service_kwargs()) is not FAILED:
            messages.success(request, f"Category {form.cleaned_data['label']} saved.")
            return redirect("classification")
    return render(request, "classification/edit.html", {"form": form, "category": category})


@admin_required
@require_POST
def category_toggle(request: HttpRequest, key: str) -> HttpResponse:
    category = _category(key)
    enable = not category.is_enabled
    update = services.tenant_category_update
    if _run(request, None, update, key=key, is_enabled=enable) is not FAILED:
        state = "enabled" if enable else "disabled"
        messages.success(request, f"Category {category.label} {state}.")
    return redirect("classification")


@admin_required
@require_POST
def settings_save(request: HttpRequest) -> HttpResponse:
    form = ClassificationSettingsForm(request.POST)
    if form.is_valid():
        update = services.classification_settings_update
        if _run(request, form, update, **form.cleaned_data) is not FAILED:
            messages.success(request, "Review flagging saved.")
            return redirect("classification")
    return _page(request, settings_form=form)
