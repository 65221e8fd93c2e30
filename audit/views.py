"""Insight pages on tenant hosts: dashboard, chargeback, usage log, audit log, exports, tokens.

Charts and summaries read the hourly rollups (audit/selectors.py); the usage log reads records
with keyset pages. Every page names its least role.
"""

import csv
import io
from datetime import date, timedelta
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied as HttpForbidden
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_POST
from drf_spectacular.generators import SchemaGenerator

from accounts.permissions import acting_user, admin_required, member_required, viewer_required
from audit import insight, selectors
from audit.classification.selectors import tenant_categories
from audit.exports import export_create, export_path, export_stream
from audit.forms import (
    ApiTokenForm,
    AuditFilterForm,
    DashboardForm,
    ExportRequestForm,
    PromptVisibilityForm,
    UsageFilterForm,
)
from audit.models import ApiToken, ExportJob, UsageRecord
from proxy.budgets.selectors import budget_progress_list
from proxy.models import CostCenter, Project, ProxyKey
from tokenscope.lib.errors import DomainError


def _tz(request: HttpRequest) -> str:
    return str(request.tenant.time_zone)  # type: ignore[attr-defined]


def _chart_rows(rows: list[dict[str, Any]], *metrics: str) -> list[dict[str, Any]]:
    """JSON-safe rows for charts.js: label plus the named metrics as numbers."""
    out = []
    for row in rows:
        item: dict[str, Any] = {"label": str(row["label"])}
        for m in metrics:
            item[m] = float(row[m]) if m.endswith("_usd") else row[m]
        out.append(item)
    return out


def _filter_choices() -> dict[str, Any]:
    return {
        "projects": Project.objects.values_list("id", "name"),
        "cost_centers": CostCenter.objects.values_list("id", "code"),
        "keys": ProxyKey.objects.values_list("id", "name", "prefix"),
        "sensitivities": UsageRecord.Sensitivity.choices,
        "categories": [(c.key, c.label) for c in tenant_categories()],
    }


@never_cache
@viewer_required
def dashboard(request: HttpRequest) -> HttpResponse:
    form = DashboardForm(request.GET, tz=_tz(request))
    if not form.is_valid():
        return render(
            request, "audit/dashboard.html", {"form": form, **_filter_choices()}, status=400
        )
    scope = selectors.RollupScope.from_form(form.cleaned_data, request.tenant)  # type: ignore[attr-defined]
    data = selectors.dashboard(scope)
    charts = {
        "series": _chart_rows(data["series"], "cost_usd", "tokens", "requests"),
        "by_model": _chart_rows(data["by_model"], "cost_usd"),
        "by_project": _chart_rows(data["by_project"], "cost_usd"),
        "by_cost_center": _chart_rows(data["by_cost_center"], "cost_usd"),
        "by_key": _chart_rows(data["top_keys"], "cost_usd"),
        "by_owner": _chart_rows(data["by_owner"], "cost_usd"),
        "by_category": _chart_rows(data["by_category"], "requests"),
        "by_sensitivity": _chart_rows(data["by_sensitivity"], "requests"),
        "relevance": _chart_rows(data["relevance"], "requests"),
    }
    context = {
        "form": form,
        "data": data,
        "charts": charts,
        "scope": scope,
        "period_end": (scope.until - timedelta(days=1)).astimezone(scope.since.tzinfo),
        "budgets": budget_progress_list(request.tenant),  # type: ignore[attr-defined]
        **_filter_choices(),
    }
    return render(request, "audit/dashboard.html", context)


@never_cache
@viewer_required
def chargeback(request: HttpRequest) -> HttpResponse:
    today = timezone.now().date()
    raw = request.GET.get("month") or f"{today:%Y-%m}"
    try:
        year, month = (int(p) for p in raw.split("-", 1))
        first = date(year, month, 1)
    except ValueError:
        return HttpResponseBadRequest("Month must look like 2026-11.")
    cc_raw = request.GET.get("cost_center") or ""
    cost_center = int(cc_raw) if cc_raw.isdigit() and len(cc_raw) < 18 else None
    centers = selectors.chargeback(first, tz=_tz(request), cost_center=cost_center)
    if request.GET.get("format") == "csv":
        return _chargeback_csv(first, centers)
    context = {
        "month": first,
        "centers": centers,
        "cost_centers": CostCenter.objects.values_list("id", "code"),
        "cost_center": cost_center,
        "print": request.GET.get("print") == "1",
    }
    return render(request, "audit/chargeback.html", context)


def _chargeback_csv(month: date, centers: list[dict[str, Any]]) -> HttpResponse:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        [
            "month",
            "cost_center",
            "dimension",
            "name",
            "requests",
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
            "cost_usd",
        ]
    )
    for center in centers:
        rows = [("total", {"label": "all"} | (center["total"] or {}))]
        rows += [("project", r) for r in center["by_project"]]
        rows += [("model", r) for r in center["by_model"]]
        for dim, r in rows:
            writer.writerow(
                [
                    f"{month:%Y-%m}",
                    center["cost_center"],
                    dim,
                    r["label"],
                    r.get("requests", 0),
                    r.get("input_tokens", 0),
                    r.get("output_tokens", 0),
                    r.get("cache_read_input_tokens", 0),
                    r.get("cache_creation_input_tokens", 0),
                    f"{r.get('cost_usd', 0):f}",
                ]
            )
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="chargeback-{month:%Y-%m}.csv"'
    return response


@never_cache
@viewer_required
def usage_log(request: HttpRequest) -> HttpResponse:
    user = acting_user(request)
    form = UsageFilterForm(request.GET, tz=_tz(request))
    can_see_prompts = selectors.prompt_visible(user)
    context: dict[str, Any] = {
        "form": form,
        "can_see_prompts": can_see_prompts,
        **_filter_choices(),
    }
    if not form.is_valid():
        return render(request, "audit/usage_log.html", context | {"rows": []}, status=400)
    usage_filter = form.usage_filter()
    if usage_filter.q and not can_see_prompts:
        raise HttpForbidden("Prompt text is hidden from viewers in this workspace.")
    try:
        rows, cursor = selectors.usage_page(
            selectors.usage_queryset(usage_filter),
            cursor=request.GET.get("cursor"),
            limit=50,
        )
    except DomainError as exc:
        return HttpResponseBadRequest(exc.message)
    params = request.GET.copy()
    params.pop("cursor", None)
    next_params = params.copy()
    if cursor:
        next_params["cursor"] = cursor
    context |= {
        "rows": rows,
        "next_query": next_params.urlencode() if cursor else "",
        "query": params.urlencode(),
        "visibility_form": PromptVisibilityForm(
            initial={
                "hide_prompts_from_viewers": selectors.insight_settings().hide_prompts_from_viewers
            }
        ),
    }
    return render(request, "audit/usage_log.html", context)


@never_cache
@viewer_required
def usage_record(request: HttpRequest, record_id: Any) -> HttpResponse:
    record = get_object_or_404(
        UsageRecord.objects.select_related("project", "cost_center", "proxy_key", "key_owner"),
        pk=record_id,
    )
    context = {
        "record": record,
        "can_see_prompts": selectors.prompt_visible(acting_user(request)),
        "breakdown": sorted((record.cost_breakdown or {}).items()),
        "privacy_mode": request.tenant.privacy_mode,  # type: ignore[attr-defined]
    }
    return render(request, "audit/usage_record.html", context)


@never_cache
@viewer_required
def usage_export(request: HttpRequest) -> HttpResponse:
    user = acting_user(request)
    fmt = request.GET.get("format", "csv")
    if fmt not in ("csv", "jsonl"):
        return HttpResponseBadRequest("format must be csv or jsonl")
    form = UsageFilterForm(request.GET, tz=_tz(request))
    if not form.is_valid():
        return HttpResponseBadRequest("Invalid filter.")
    usage_filter = form.usage_filter()
    visible = selectors.prompt_visible(user)
    if usage_filter.q and not visible:
        raise HttpForbidden("Prompt text is hidden from viewers in this workspace.")
    return export_stream(  # type: ignore[return-value]  # streamed
        user,
        kind="usage",
        fmt=fmt,
        qs=selectors.usage_queryset(usage_filter),
        filters=usage_filter.params,
        include_prompt=visible,
        request=request,
    )


@never_cache
@admin_required
def audit_log(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET, tz=_tz(request))
    if not form.is_valid():
        return render(request, "audit/audit_log.html", {"form": form, "rows": []}, status=400)
    qs = selectors.audit_queryset(form.cleaned_data).order_by("-id")
    before = request.GET.get("before") or ""
    if before.isdigit() and len(before) < 18:
        qs = qs.filter(id__lt=int(before))
    rows = list(qs[:101])
    params = request.GET.copy()
    params.pop("before", None)
    context = {
        "form": form,
        "rows": rows[:100],
        "next_before": rows[99].pk if len(rows) > 100 else None,
        "query": params.urlencode(),
    }
    return render(request, "audit/audit_log.html", context)


@never_cache
@admin_required
def audit_export(request: HttpRequest) -> HttpResponse:
    fmt = request.GET.get("format", "csv")
    form = AuditFilterForm(request.GET, tz=_tz(request))
    if fmt not in ("csv", "jsonl") or not form.is_valid():
        return HttpResponseBadRequest("Invalid export request.")
    return export_stream(  # type: ignore[return-value]  # streamed
        acting_user(request),
        kind="audit",
        fmt=fmt,
        qs=selectors.audit_queryset(form.cleaned_data),
        filters=form.params(),
        include_prompt=False,
        request=request,
    )


@never_cache
@viewer_required
def exports(request: HttpRequest) -> HttpResponse:
    jobs = selectors.export_list(acting_user(request))[:100]
    return render(request, "audit/exports.html", {"jobs": jobs})


@never_cache
@member_required
@require_POST
def export_request(request: HttpRequest) -> HttpResponse:
    user = acting_user(request)
    form = ExportRequestForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest("Invalid export request.")
    kind = form.cleaned_data["kind"]
    if kind == ExportJob.Kind.AUDIT and not user.is_admin:
        raise HttpForbidden
    filter_form: Any = (UsageFilterForm if kind == ExportJob.Kind.USAGE else AuditFilterForm)(
        request.POST, tz=_tz(request)
    )
    if not filter_form.is_valid():
        return HttpResponseBadRequest("Invalid filter.")
    export_create(
        user,
        kind=kind,
        fmt=form.cleaned_data["format"],
        filters=filter_form.params(),
        request=request,
    )
    messages.success(request, "Export queued. We will email you a link when it is ready.")
    return redirect("exports")


@never_cache
@viewer_required
def export_download(request: HttpRequest, export_id: Any) -> HttpResponse:
    job = get_object_or_404(selectors.export_list(acting_user(request)), pk=export_id)
    if job.is_expired:
        return HttpResponse("This export has expired.", status=410)
    path = export_path(job)
    if job.status != ExportJob.Status.DONE or not path.exists():
        raise Http404
    response = FileResponse(
        path.open("rb"), as_attachment=True, filename=f"{job.kind}-{job.file_name}"
    )
    response["Cache-Control"] = "no-store"
    return response  # type: ignore[return-value]  # a file response


@never_cache
@admin_required
@sensitive_variables("token")
def api_tokens(request: HttpRequest) -> HttpResponse:
    actor = acting_user(request)
    form = ApiTokenForm(request.POST or None)
    token = None
    if request.method == "POST" and form.is_valid():
        _, token = insight.api_token_create(
            actor,
            user=actor,
            scope=form.cleaned_data["scope"],
            name=form.cleaned_data["name"],
            request=request,
        )
        form = ApiTokenForm()
    context = {"tokens": selectors.api_token_list(), "form": form, "new_token": token}
    return render(request, "audit/api_tokens.html", context)


@never_cache
@admin_required
@require_POST
def api_token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=token_id)
    insight.api_token_revoke(acting_user(request), token=token, request=request)
    messages.success(request, f"Revoked {token}.")
    return redirect("api_tokens")


@never_cache
@admin_required
@require_POST
def prompt_visibility(request: HttpRequest) -> HttpResponse:
    form = PromptVisibilityForm(request.POST)
    if form.is_valid():
        insight.insight_settings_update(
            acting_user(request),
            hide_prompts_from_viewers=form.cleaned_data["hide_prompts_from_viewers"],
            request=request,
        )
        messages.success(request, "Prompt visibility saved.")
    return redirect("usage_log")


@viewer_required
def api_docs(request: HttpRequest) -> HttpResponse:
    """A plain page listing every endpoint of the OpenAPI schema (no third-party scripts)."""
    schema = SchemaGenerator(urlconf="audit.urls_api").get_schema(request=None, public=True)
    endpoints = []
    for path_name, operations in sorted(schema.get("paths", {}).items()):
        for method, op in operations.items():
            endpoints.append(
                {
                    "method": method.upper(),
                    "path": path_name,
                    "summary": op.get("description", "") or op.get("summary", ""),
                    "parameters": op.get("parameters", []),
                }
            )
    return render(request, "audit/api_docs.html", {"endpoints": endpoints})
