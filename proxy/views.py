"""Workspace pages on tenant hosts: proxy keys, projects, cost centers, the Anthropic key.

Viewers read lists (never a secret), members create proxy keys they own, admins do the rest.
"""

from typing import Any
from uuid import UUID

from django.contrib import messages
from django.core.exceptions import PermissionDenied as HttpForbidden
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_POST

from accounts.permissions import admin_required, member_required, viewer_required
from proxy import selectors, services
from proxy.custody import KeyCustodyError
from proxy.forms import AnthropicKeyForm, CostCenterForm, ProjectForm, ProxyKeyForm
from proxy.models import AnthropicCredential, CostCenter, Project, ProxyKey
from tokenscope.lib.errors import DomainError, PermissionDenied

FAILED = object()


def _run(request: HttpRequest, form: Any, action: Any, **kwargs: Any) -> Any:
    """Call a service; a domain error lands on the form (or 403 for a refused permission).

    Returns the service's result, or FAILED.
    """
    try:
        return action(request.user, tenant=request.tenant, request=request, **kwargs)  # type: ignore[attr-defined]
    except PermissionDenied as exc:
        raise HttpForbidden(exc.message) from exc
    except DomainError as exc:
        field = exc.field if exc.field in getattr(form, "fields", {}) else None
        if form is None:
            messages.error(request, exc.message)
        else:
            form.add_error(field, exc.message)
    except KeyCustodyError:
        message = "Key storage is unavailable right now; nothing was saved. Try again shortly."
        if form is None:
            messages.error(request, message)
        else:
            form.add_error(None, message)
    return FAILED


def _snippet_context(key: str | None = None) -> dict[str, Any]:
    return {"base_url": selectors.proxy_base_url(), "snippet_key": key or "YOUR_PROXY_KEY"}


# ---- proxy keys -------------------------------------------------------------------------------


def _keys_page(request: HttpRequest, form: ProxyKeyForm | None, **extra: Any) -> HttpResponse:
    context = {
        "keys": selectors.proxy_key_list(),
        "form": form,
        **_snippet_context(extra.pop("new_key", None)),
        **extra,
    }
    return render(request, "proxy/keys.html", context)


@never_cache
@viewer_required
def proxy_keys(request: HttpRequest) -> HttpResponse:
    member = request.user.has_role("member")  # type: ignore[union-attr]
    return _keys_page(request, ProxyKeyForm(actor=request.user) if member else None)  # type: ignore[arg-type]


@never_cache
@member_required
@require_POST
@sensitive_variables("key", "created")
def proxy_key_create(request: HttpRequest) -> HttpResponse:
    form = ProxyKeyForm(request.POST, actor=request.user)  # type: ignore[arg-type]
    if form.is_valid():
        created = _run(request, form, services.proxy_key_create, **form.cleaned_data)
        if created is not FAILED:
            proxy_key, key = created
            # Shown once, in this response only: never in a redirect, a message or the session.
            blank = ProxyKeyForm(actor=request.user)  # type: ignore[arg-type]
            return _keys_page(request, blank, new_key=key, created=proxy_key)
    return _keys_page(request, form)


@member_required
@require_POST
def proxy_key_revoke(request: HttpRequest, key_id: UUID) -> HttpResponse:
    proxy_key = get_object_or_404(ProxyKey, pk=key_id)
    if _run(request, None, services.proxy_key_revoke, proxy_key=proxy_key) is not FAILED:
        messages.success(request, f"Revoked {proxy_key}.")
    return redirect("proxy_keys")


# ---- projects and cost centers ---------------------------------------------------------------


@viewer_required
def projects(request: HttpRequest, form: ProjectForm | None = None) -> HttpResponse:
    form = form or (ProjectForm() if request.user.is_admin else None)  # type: ignore[union-attr]
    context = {"projects": selectors.project_list(), "form": form}
    return render(request, "proxy/projects.html", context)


@admin_required
@require_POST
def project_create(request: HttpRequest) -> HttpResponse:
    form = ProjectForm(request.POST)
    if form.is_valid() and (
        _run(request, form, services.project_create, **form.cleaned_data) is not FAILED
    ):
        messages.success(request, f"Project {form.cleaned_data['name']} created.")
        return redirect("projects")
    return projects(request, form)


@admin_required
def project_edit(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(Project, pk=project_id)
    initial = {"name": project.name, "purpose": project.purpose}
    initial["default_cost_center"] = project.default_cost_center_id  # type: ignore[assignment]
    form = ProjectForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        saved = _run(request, form, services.project_update, project=project, **form.cleaned_data)
        if saved is not FAILED:
            messages.success(request, f"Project {project.name} saved.")
            return redirect("projects")
    return render(request, "proxy/edit.html", {"form": form, "object": project, "kind": "project"})


@admin_required
@require_POST
def project_archive(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(Project, pk=project_id)
    archived = request.POST.get("archived", "1") == "1"
    _run(request, None, services.project_archive, project=project, archived=archived)
    return redirect("projects")


@viewer_required
def cost_centers(request: HttpRequest, form: CostCenterForm | None = None) -> HttpResponse:
    form = form or (CostCenterForm() if request.user.is_admin else None)  # type: ignore[union-attr]
    context = {"cost_centers": selectors.cost_center_list(), "form": form}
    return render(request, "proxy/cost_centers.html", context)


@admin_required
@require_POST
def cost_center_create(request: HttpRequest) -> HttpResponse:
    form = CostCenterForm(request.POST)
    if form.is_valid() and (
        _run(request, form, services.cost_center_create, **form.cleaned_data) is not FAILED
    ):
        messages.success(request, f"Cost center {form.cleaned_data['code']} created.")
        return redirect("cost_centers")
    return cost_centers(request, form)


@admin_required
def cost_center_edit(request: HttpRequest, cost_center_id: int) -> HttpResponse:
    center = get_object_or_404(CostCenter, pk=cost_center_id)
    initial = {"code": center.code, "name": center.name, "owner_email": center.owner_email}
    form = CostCenterForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if (
            _run(request, form, services.cost_center_update, cost_center=center, **data)
            is not FAILED
        ):
            messages.success(request, f"Cost center {center.code} saved.")
            return redirect("cost_centers")
    context = {"form": form, "object": center, "kind": "cost center"}
    return render(request, "proxy/edit.html", context)


@admin_required
@require_POST
def cost_center_archive(request: HttpRequest, cost_center_id: int) -> HttpResponse:
    center = get_object_or_404(CostCenter, pk=cost_center_id)
    archived = request.POST.get("archived", "1") == "1"
    _run(request, None, services.cost_center_archive, cost_center=center, archived=archived)
    return redirect("cost_centers")


# ---- the Anthropic key -----------------------------------------------------------------------


@never_cache
@viewer_required
def anthropic_key(request: HttpRequest, form: AnthropicKeyForm | None = None) -> HttpResponse:
    form = form or (AnthropicKeyForm() if request.user.is_admin else None)  # type: ignore[union-attr]
    context = {"credentials": selectors.anthropic_credential_list(), "form": form}
    return render(request, "proxy/anthropic_key.html", context)


@never_cache
@sensitive_post_parameters("key")
@admin_required
@require_POST
@sensitive_variables("form")
def anthropic_key_set(request: HttpRequest) -> HttpResponse:
    form = AnthropicKeyForm(request.POST)
    if form.is_valid():
        credential = _run(request, form, services.anthropic_credential_set, **form.cleaned_data)
        if credential is not FAILED:
            messages.success(request, f"Saved {credential}.")
            return redirect("anthropic_key")
    # The key field is a PasswordInput that never renders the submitted value back.
    return anthropic_key(request, form)


@admin_required
@require_POST
def anthropic_key_delete(request: HttpRequest, credential_id: UUID) -> HttpResponse:
    credential = get_object_or_404(AnthropicCredential, pk=credential_id)
    label = str(credential)
    if (
        _run(request, None, services.anthropic_credential_delete, credential=credential)
        is not FAILED
    ):
        messages.success(request, f"Deleted {label}.")
    return redirect("anthropic_key")


# ---- onboarding ------------------------------------------------------------------------------


@viewer_required
def onboarding(request: HttpRequest) -> HttpResponse:
    context = {"status": selectors.onboarding_status(), **_snippet_context()}
    return render(request, "proxy/onboarding.html", context)
