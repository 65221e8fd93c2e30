from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth import logout
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from accounts.permissions import owner_required, viewer_required
from privacy.deletion import deletion_for_token, tenant_deletion_cancel, tenant_deletion_request
from privacy.forms import (
    DeletionCancelForm,
    PrivacyRequestForm,
    RetentionForm,
    SelfDeleteForm,
    TenantDeletionForm,
)
from privacy.models import PolicyVersion
from privacy.policy import parse_policy
from privacy.retention import retention_days_effective, retention_preview
from privacy.selectors import platform_totals, policy_history, policy_in_force, policy_upcoming
from privacy.services import (
    data_export_create,
    data_export_download,
    privacy_request_for_token,
    privacy_request_submit,
    privacy_request_verify,
    tenant_retention_set,
    user_self_delete,
)
from tokenscope.lib.errors import DomainError, NotFound
from tokenscope.lib.net import client_ip


def _form_error(form: object, exc: DomainError) -> None:
    fields = getattr(form, "fields", {})
    form.add_error(exc.field if exc.field in fields else None, exc.message)  # type: ignore[attr-defined]


def _zip(content: bytes, name: str) -> HttpResponse:
    response = HttpResponse(content, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "no-store"
    return response


def policy(request: HttpRequest) -> HttpResponse:
    current = policy_in_force()
    upcoming = policy_upcoming()
    context = {
        "version": current,
        "policy": parse_policy(current.text),
        "upcoming": upcoming,
        "history": policy_history(),
    }
    return render(request, "privacy/policy.html", context)


def policy_version(request: HttpRequest, version: str) -> HttpResponse:
    found = get_object_or_404(PolicyVersion, version=version)
    context = {"version": found, "policy": parse_policy(found.text), "history": policy_history()}
    return render(request, "privacy/policy.html", context)


def request_form(request: HttpRequest) -> HttpResponse:
    form = PrivacyRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if data["website"]:  # the honeypot: answer like a success, keep nothing
            return render(request, "privacy/request_sent.html")
        try:
            privacy_request_submit(
                email=data["email"],
                name=data["name"],
                type=data["type"],
                details=data["details"],
                ip=client_ip(request),
            )
        except DomainError as exc:
            _form_error(form, exc)
        else:
            return render(request, "privacy/request_sent.html")
    return render(request, "privacy/request_form.html", {"form": form}, status=200)


def request_verify(request: HttpRequest, token: str) -> HttpResponse:
    try:
        req = (
            privacy_request_verify(token)
            if request.method == "POST"
            else privacy_request_for_token(token)
        )
    except NotFound as exc:
        raise Http404(exc.message) from exc
    template = (
        "privacy/request_verified.html" if request.method == "POST" else "privacy/confirm.html"
    )
    return render(request, template, {"req": req, "action": "Confirm my request"})


def export_download(request: HttpRequest, token: str) -> HttpResponse:
    if request.method != "POST":
        return render(request, "privacy/confirm.html", {"action": "Download my data"})
    try:
        content = data_export_download(token)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    return _zip(content, "tokenscope-personal-data.zip")


@sensitive_post_parameters("password")
def deletion_cancel(request: HttpRequest, token: str) -> HttpResponse:
    try:
        deletion = deletion_for_token(token)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    form = DeletionCancelForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            tenant = tenant_deletion_cancel(
                token, email=form.cleaned_data["email"], password=form.cleaned_data["password"]
            )
        except DomainError as exc:
            _form_error(form, exc)
        else:
            return render(request, "privacy/deletion_cancelled.html", {"workspace": tenant})
    return render(request, "privacy/deletion_cancel.html", {"form": form, "deletion": deletion})


@staff_member_required
def platform_analytics(request: HttpRequest) -> HttpResponse:
    return render(request, "privacy/admin_analytics.html", {"totals": platform_totals()})


# ---------------------------------------------------------------- tenant hosts


@viewer_required
def data_and_privacy(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant  # type: ignore[attr-defined]
    context = {"retention_days": retention_days_effective(tenant)}
    return render(request, "privacy/data.html", context)


@viewer_required
@require_POST
def my_data_download(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant  # type: ignore[attr-defined]
    _export, token = data_export_create(tenant, user_id=request.user.pk)  # type: ignore[arg-type]
    return _zip(data_export_download(token), "tokenscope-my-data.zip")


@owner_required
def retention_settings(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant  # type: ignore[attr-defined]
    plan_days = tenant.plan.retention_days
    initial = {"retention_days": tenant.retention_days_override}
    form = RetentionForm(request.POST or None, initial=initial, plan_days=plan_days)
    if request.method == "POST" and form.is_valid():
        try:
            changed = tenant_retention_set(
                tenant,
                actor=request.user,  # type: ignore[arg-type]
                days=form.cleaned_data["retention_days"],
                request=request,
            )
        except DomainError as exc:
            _form_error(form, exc)
        else:
            messages.success(request, "Retention saved." if changed else "Nothing changed.")
            return redirect("privacy_retention")
    context = {
        "form": form,
        "plan_days": plan_days,
        "effective_days": retention_days_effective(tenant),
        "preview": retention_preview(tenant),
    }
    return render(request, "privacy/retention.html", context)


@owner_required
@sensitive_post_parameters("password")
def tenant_delete(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant  # type: ignore[attr-defined]
    form = TenantDeletionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            deletion = tenant_deletion_request(
                tenant,
                actor=request.user,  # type: ignore[arg-type]
                password=form.cleaned_data["password"],
                confirm_slug=form.cleaned_data["confirm_slug"],
                request=request,
            )
        except DomainError as exc:
            _form_error(form, exc)
        else:
            logout(request)
            return render(request, "privacy/tenant_deleting.html", {"deletion": deletion})
    return render(request, "privacy/tenant_delete.html", {"form": form})


@viewer_required
@sensitive_post_parameters("password")
def account_delete(request: HttpRequest) -> HttpResponse:
    form = SelfDeleteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user_self_delete(
                request.user,  # type: ignore[arg-type]
                tenant=request.tenant,  # type: ignore[attr-defined]
                password=form.cleaned_data["password"],
                request=request,
            )
        except DomainError as exc:
            _form_error(form, exc)
        else:
            logout(request)
            return render(request, "privacy/account_deleted.html")
    return render(request, "privacy/account_delete.html", {"form": form})
