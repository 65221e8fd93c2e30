"""REST API v1 on tenant hosts (DRF). Every view derives from TenantAPIView.

TenantAPIView fixes authentication (bearer API token or session), the permission check
(signed in to *this* tenant's schema, role at least `read_role` for reads and the action's
write role for writes, and a read-only token never writes) and the error format; subclasses
cannot replace these (defining `permission_classes` or `authentication_classes` raises
TypeError at import). Objects are looked up in the current tenant's schema only, so another
tenant's ids are simply not found (404).
"""

from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import connection
from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from drf_spectacular.views import SpectacularAPIView
from rest_framework import exceptions, status
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.decorators import action
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.viewsets import ViewSetMixin

from accounts.models import Role, User
from audit import selectors
from audit.exports import export_create, usage_dict, usage_record_values
from audit.forms import AuditFilterForm, SummaryForm, UsageFilterForm
from audit.models import ApiToken, AuditEvent, ExportJob, UsageRecord
from audit.models.api_tokens import api_token_hash
from audit.serializers import (
    AuditEventPageSerializer,
    AuditEventSerializer,
    BudgetSerializer,
    CostCenterSerializer,
    ErrorSerializer,
    ExportCreateSerializer,
    ExportJobSerializer,
    ProjectSerializer,
    ProxyKeyCreatedSerializer,
    ProxyKeySerializer,
    SummarySerializer,
    UsageRecordPageSerializer,
    UsageRecordSerializer,
)
from proxy import services as proxy_services
from proxy.budgets.selectors import budget_progress_list
from proxy.budgets.services import budget_create, budget_delete
from proxy.models import Budget, CostCenter, Project, ProxyKey
from tenants.models import Tenant
from tokenscope.lib import errors

# ---- authentication -------------------------------------------------------------------------


class ApiTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer tsa_<tenant>_<secret>`; the token lives in the tenant's schema."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        token = token.strip()
        if not token or len(token) > 200:
            raise exceptions.AuthenticationFailed("Invalid token.")
        row = (
            ApiToken.objects.active()
            .select_related("user")
            .filter(token_hash=api_token_hash(token))
            .first()
        )
        if row is None or not row.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid token.")
        now = timezone.now()
        if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
        return row.user, row

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "audit.api.ApiTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer"}


class TenantRolePermission(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        tenant = getattr(request, "tenant", None) or getattr(connection, "tenant", None)
        if tenant is None or tenant.schema_name == settings.PUBLIC_SCHEMA_NAME:
            return False
        user = request.user
        if not isinstance(user, User) or not user.is_authenticated or not user.is_active:
            return False
        safe = request.method in SAFE_METHODS
        token = request.auth if isinstance(request.auth, ApiToken) else None
        if token is not None and not safe and token.scope != ApiToken.Scope.WRITE:
            return False
        if safe:
            role = view.read_role
        else:
            role = view.write_roles.get(getattr(view, "action", None), view.write_role)
        return user.has_role(role)


# ---- errors ---------------------------------------------------------------------------------

DOMAIN_STATUS = {
    errors.NotFound: status.HTTP_404_NOT_FOUND,
    errors.PermissionDenied: status.HTTP_403_FORBIDDEN,
    errors.Conflict: status.HTTP_409_CONFLICT,
}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """One error shape for the whole API: {"code", "message", "field"} (+ "errors")."""
    if isinstance(exc, errors.DomainError):
        code = DOMAIN_STATUS.get(type(exc), status.HTTP_400_BAD_REQUEST)
        return Response({"code": exc.code, "message": exc.message, "field": exc.field}, code)
    if isinstance(exc, ObjectDoesNotExist):
        exc = Http404()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    body: dict[str, Any] = {"code": "error", "message": "", "field": None}
    if isinstance(exc, exceptions.APIException):
        body["code"] = exc.default_code
    if isinstance(exc, Http404):
        body["code"] = "not_found"
    if isinstance(response.data, dict) and "detail" in response.data:
        body["message"] = str(response.data["detail"])
    else:
        body["message"] = "Invalid input."
        body["errors"] = response.data
    response.data = body
    return response


def _tenant() -> Tenant:
    return connection.tenant  # type: ignore[attr-defined]


# ---- base -----------------------------------------------------------------------------------


class TenantAPIView(GenericAPIView):
    """The only base of API views: tenant scoping, roles, token scope, one error format."""

    authentication_classes = (ApiTokenAuthentication, SessionAuthentication)
    permission_classes = (TenantRolePermission,)
    read_role: ClassVar[str] = Role.VIEWER
    write_role: ClassVar[str] = Role.ADMIN
    write_roles: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("authentication_classes", "permission_classes"):
            if name in cls.__dict__:
                raise TypeError(f"{cls.__name__} may not override {name}")

    def get_exception_handler(self) -> Any:
        return api_exception_handler

    @property
    def actor(self) -> User:
        assert isinstance(self.request.user, User)
        return self.request.user

    @property
    def django_request(self) -> HttpRequest:
        return self.request._request

    def tz(self) -> str:
        return str(connection.tenant.time_zone)  # type: ignore[attr-defined]

    def next_url(self, cursor: str | None) -> str | None:
        if cursor is None:
            return None
        params = self.request.query_params.copy()
        params["cursor"] = cursor
        return self.request.build_absolute_uri(self.request.path) + "?" + params.urlencode()

    def limit(self) -> int:
        raw = self.request.query_params.get("limit", "100")
        if not raw.isdigit() or not 1 <= int(raw) <= 1000:
            raise errors.DomainError("limit must be between 1 and 1000.", field="limit")
        return int(raw)


class TenantViewSet(ViewSetMixin, TenantAPIView):
    pass


def _form_errors(form: Any) -> exceptions.ValidationError:
    return exceptions.ValidationError({k: [str(m) for m in v] for k, v in form.errors.items()})


ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Invalid input"),
    401: OpenApiResponse(ErrorSerializer, description="Not signed in or bad token"),
    403: OpenApiResponse(ErrorSerializer, description="Role or token scope too low"),
    404: OpenApiResponse(ErrorSerializer, description="Not found in this tenant"),
}
PAGE_PARAMS = [
    OpenApiParameter("cursor", str, description="Opaque cursor from `next`."),
    OpenApiParameter("limit", int, description="Page size, 1–1000 (default 100)."),
]
USAGE_PARAMS = [
    OpenApiParameter("since", str, description="From (date in the tenant's zone or ISO time)."),
    OpenApiParameter("until", str, description="To (date inclusive, or ISO time exclusive)."),
    OpenApiParameter("model", str),
    OpenApiParameter("project", int),
    OpenApiParameter("cost_center", int),
    OpenApiParameter("proxy_key", OpenApiTypes.UUID),
    OpenApiParameter("status", str, description="ok, error or an HTTP status code."),
    OpenApiParameter("category", str),
    OpenApiParameter("sensitivity", str, enum=[c for c, _ in UsageRecord.Sensitivity.choices]),
    OpenApiParameter("relevance_min", float),
    OpenApiParameter("relevance_max", float),
    OpenApiParameter("flagged", bool, description="Only records flagged for review."),
    OpenApiParameter("q", str, description="Search stored prompt text (≤ 31 days)."),
]
ROLLUP_PARAMS = [
    OpenApiParameter("since", str),
    OpenApiParameter("until", str),
    OpenApiParameter("model", str),
    OpenApiParameter("project", int),
    OpenApiParameter("cost_center", int),
    OpenApiParameter("proxy_key", OpenApiTypes.UUID),
    OpenApiParameter("category", str),
    OpenApiParameter(
        "group_by",
        str,
        description="Comma-separated: day|week|month, model, project, cost_center, key, "
        "category, sensitivity.",
    ),
]

# ---- usage ----------------------------------------------------------------------------------


class UsageRecordListView(TenantAPIView):
    """Usage records, newest first, in keyset pages (`next` carries the cursor)."""

    serializer_class = UsageRecordSerializer

    @extend_schema(
        operation_id="usage_list",
        parameters=USAGE_PARAMS + PAGE_PARAMS,
        responses={200: UsageRecordPageSerializer, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        form = UsageFilterForm(request.query_params, tz=self.tz())
        if not form.is_valid():
            raise _form_errors(form)
        usage_filter = form.usage_filter()
        if usage_filter.q and not selectors.prompt_visible(self.actor):
            raise errors.PermissionDenied("Prompt text is hidden from viewers in this workspace.")
        rows, cursor = selectors.usage_page(
            selectors.usage_queryset(usage_filter),
            cursor=request.query_params.get("cursor"),
            limit=self.limit(),
        )
        include = selectors.prompt_visible(self.actor)
        results = [usage_dict(usage_record_values(r, include_prompt=include)) for r in rows]
        return Response({"results": results, "next": self.next_url(cursor)})


class UsageRecordViewSet(TenantViewSet):
    serializer_class = UsageRecordSerializer
    queryset = UsageRecord.objects.all()
    lookup_value_regex = "[0-9a-f-]{36}"

    @extend_schema(responses={200: UsageRecordSerializer, **ERRORS})
    def retrieve(self, request: Request, pk: str) -> Response:
        record = get_object_or_404(
            UsageRecord.objects.select_related("project", "cost_center"), pk=_uuid(pk)
        )
        include = selectors.prompt_visible(self.actor)
        return Response(usage_dict(usage_record_values(record, include_prompt=include)))


def _uuid(value: str) -> Any:
    import uuid

    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise Http404 from exc


class UsageSummaryView(TenantAPIView):
    serializer_class = SummarySerializer

    @extend_schema(parameters=ROLLUP_PARAMS, responses={200: SummarySerializer, **ERRORS})
    def get(self, request: Request) -> Response:
        form = SummaryForm(request.query_params, tz=self.tz())
        if not form.is_valid():
            raise _form_errors(form)
        scope = selectors.RollupScope.from_form(form.cleaned_data, _tenant())
        group_by = [g.strip() for g in (form.cleaned_data.get("group_by") or "").split(",")]
        group_by = [g for g in group_by if g]
        rows = selectors.usage_summary(scope, group_by)
        for row in rows:
            for name, value in list(row.items()):
                if name.endswith("_usd"):
                    row[name] = f"{value:f}"
        return Response(
            {"group_by": group_by, "since": scope.since, "until": scope.until, "results": rows}
        )


# ---- workspace ------------------------------------------------------------------------------


class _CreateMixin:
    def create_response(self, instance: Any, serializer_class: Any, **extra: Any) -> Response:
        data = serializer_class(instance).data | extra
        return Response(data, status=status.HTTP_201_CREATED)


class ProjectViewSet(_CreateMixin, TenantViewSet):
    serializer_class = ProjectSerializer
    queryset = Project.objects.all()

    @extend_schema(responses={200: ProjectSerializer(many=True), **ERRORS})
    def list(self, request: Request) -> Response:
        return Response(ProjectSerializer(self.get_queryset(), many=True).data)

    @extend_schema(responses={200: ProjectSerializer, **ERRORS})
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(ProjectSerializer(get_object_or_404(Project, pk=_int(pk))).data)

    @extend_schema(request=ProjectSerializer, responses={201: ProjectSerializer, **ERRORS})
    def create(self, request: Request) -> Response:
        s = ProjectSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        project = proxy_services.project_create(
            self.actor,
            tenant=_tenant(),
            name=s.validated_data["name"],
            purpose=s.validated_data.get("purpose", ""),
            default_cost_center=s.validated_data.get("default_cost_center"),
            request=self.django_request,
        )
        return self.create_response(project, ProjectSerializer)


def _int(value: str) -> int:
    if not value.isdigit() or len(value) > 18:
        raise Http404
    return int(value)


class CostCenterViewSet(_CreateMixin, TenantViewSet):
    serializer_class = CostCenterSerializer
    queryset = CostCenter.objects.all()

    @extend_schema(responses={200: CostCenterSerializer(many=True), **ERRORS})
    def list(self, request: Request) -> Response:
        return Response(CostCenterSerializer(self.get_queryset(), many=True).data)

    @extend_schema(responses={200: CostCenterSerializer, **ERRORS})
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(CostCenterSerializer(get_object_or_404(CostCenter, pk=_int(pk))).data)

    @extend_schema(request=CostCenterSerializer, responses={201: CostCenterSerializer, **ERRORS})
    def create(self, request: Request) -> Response:
        s = CostCenterSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        center = proxy_services.cost_center_create(
            self.actor,
            tenant=_tenant(),
            code=s.validated_data["code"],
            name=s.validated_data["name"],
            owner_email=s.validated_data.get("owner_email", ""),
            request=self.django_request,
        )
        return self.create_response(center, CostCenterSerializer)


class ProxyKeyViewSet(_CreateMixin, TenantViewSet):
    serializer_class = ProxyKeySerializer
    queryset = ProxyKey.objects.select_related("owner")
    write_roles: ClassVar[dict[str, str]] = {"create": Role.MEMBER, "revoke": Role.MEMBER}
    lookup_value_regex = "[0-9a-f-]{36}"

    @extend_schema(responses={200: ProxyKeySerializer(many=True), **ERRORS})
    def list(self, request: Request) -> Response:
        return Response(ProxyKeySerializer(self.get_queryset(), many=True).data)

    @extend_schema(responses={200: ProxyKeySerializer, **ERRORS})
    def retrieve(self, request: Request, pk: str) -> Response:
        key = get_object_or_404(self.get_queryset(), pk=_uuid(pk))
        return Response(ProxyKeySerializer(key).data)

    @extend_schema(request=ProxyKeySerializer, responses={201: ProxyKeyCreatedSerializer, **ERRORS})
    def create(self, request: Request) -> Response:
        s = ProxyKeySerializer(data=request.data)
        s.is_valid(raise_exception=True)
        data = s.validated_data
        key, secret = proxy_services.proxy_key_create(
            self.actor,
            tenant=_tenant(),
            project=data["project"],
            cost_center=data["cost_center"],
            name=data.get("name", ""),
            expires_at=data.get("expires_at"),
            allowed_models=[str(m) for m in data.get("allowed_models") or []],
            request=self.django_request,
        )
        response = self.create_response(key, ProxyKeySerializer, key=secret)
        response["Cache-Control"] = "no-store"
        return response

    @extend_schema(request=None, responses={200: ProxyKeySerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str) -> Response:
        key = get_object_or_404(self.get_queryset(), pk=_uuid(pk))
        key = proxy_services.proxy_key_revoke(
            self.actor,
            tenant=_tenant(),
            proxy_key=key,
            request=self.django_request,
        )
        return Response(ProxyKeySerializer(key).data)


# ---- audit and exports ----------------------------------------------------------------------


class AuditEventListView(TenantAPIView):
    """Administrative actions, newest first, in keyset pages (owners and admins)."""

    serializer_class = AuditEventSerializer
    read_role = Role.ADMIN

    @extend_schema(
        operation_id="audit_events_list",
        parameters=[
            OpenApiParameter("since", str),
            OpenApiParameter("until", str),
            OpenApiParameter("action", str, description="Action prefix, e.g. proxy_key."),
            OpenApiParameter("actor", str, description="Actor email contains."),
            OpenApiParameter("object_type", str),
            OpenApiParameter("ip_address", str),
            *PAGE_PARAMS,
        ],
        responses={200: AuditEventPageSerializer, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        form = AuditFilterForm(request.query_params, tz=self.tz())
        if not form.is_valid():
            raise _form_errors(form)
        qs = selectors.audit_queryset(form.cleaned_data)
        cursor = request.query_params.get("cursor")
        if cursor:
            qs = qs.filter(id__lt=_cursor_int(cursor))
        limit = self.limit()
        rows = list(qs.order_by("-id")[: limit + 1])
        more = len(rows) > limit
        rows = rows[:limit]
        data = AuditEventSerializer(rows, many=True).data
        next_cursor = str(rows[-1].pk) if more and rows else None
        return Response({"results": data, "next": self.next_url(next_cursor)})


def _budget_row(progress: Any) -> dict[str, Any]:
    budget = progress.budget
    return {
        "id": budget.pk,
        "name": budget.name,
        "scope": budget.scope,
        "target": None if budget.target_id is None else str(budget.target_id),
        "amount_usd": budget.amount_usd,
        "period": budget.period,
        "thresholds": budget.thresholds,
        "block": budget.block,
        "spent_usd": progress.spent,
        "reserved_usd": progress.reserved,
        "projected_usd": progress.projected,
        "period_start": progress.window.start,
        "resets_at": progress.resets_at,
    }


class BudgetViewSet(_CreateMixin, TenantViewSet):
    """Budgets with the current period's spend; admins create and delete (audited)."""

    serializer_class = BudgetSerializer
    queryset = Budget.objects.all()

    def _rows(self) -> list[dict[str, Any]]:
        return [_budget_row(p) for p in budget_progress_list(_tenant())]

    @extend_schema(responses={200: BudgetSerializer(many=True), **ERRORS})
    def list(self, request: Request) -> Response:
        return Response(BudgetSerializer(self._rows(), many=True).data)

    @extend_schema(responses={200: BudgetSerializer, **ERRORS})
    def retrieve(self, request: Request, pk: str) -> Response:
        wanted = _int(pk)
        row = next((r for r in self._rows() if r["id"] == wanted), None)
        if row is None:
            raise Http404
        return Response(BudgetSerializer(row).data)

    @extend_schema(request=BudgetSerializer, responses={201: BudgetSerializer, **ERRORS})
    def create(self, request: Request) -> Response:
        s = BudgetSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        data = s.validated_data
        budget = budget_create(
            self.actor,
            tenant=_tenant(),
            name=data["name"],
            scope=data["scope"],
            amount_usd=data["amount_usd"],
            period=data["period"],
            target=data.get("target"),
            thresholds=data.get("thresholds"),
            block=data.get("block", False),
            request=self.django_request,
        )
        row = next(r for r in self._rows() if r["id"] == budget.pk)
        return Response(BudgetSerializer(row).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None, **ERRORS})
    def destroy(self, request: Request, pk: str) -> Response:
        budget = get_object_or_404(Budget, pk=_int(pk))
        budget_delete(self.actor, tenant=_tenant(), budget=budget, request=self.django_request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AuditEventViewSet(TenantViewSet):
    serializer_class = AuditEventSerializer
    queryset = AuditEvent.objects.all()
    read_role = Role.ADMIN

    @extend_schema(responses={200: AuditEventSerializer, **ERRORS})
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(AuditEventSerializer(get_object_or_404(AuditEvent, pk=_int(pk))).data)


def _cursor_int(value: str) -> int:
    if not value.isdigit() or len(value) > 18:
        raise errors.DomainError("Invalid cursor.", field="cursor")
    return int(value)


class ExportViewSet(_CreateMixin, TenantViewSet):
    serializer_class = ExportJobSerializer
    queryset = ExportJob.objects.all()
    write_roles: ClassVar[dict[str, str]] = {"create": Role.MEMBER}
    lookup_value_regex = "[0-9a-f-]{36}"

    @extend_schema(responses={200: ExportJobSerializer(many=True), **ERRORS})
    def list(self, request: Request) -> Response:
        jobs = selectors.export_list(self.actor)[:200]
        return Response(ExportJobSerializer(jobs, many=True).data)

    @extend_schema(responses={200: ExportJobSerializer, **ERRORS})
    def retrieve(self, request: Request, pk: str) -> Response:
        job = get_object_or_404(selectors.export_list(self.actor), pk=_uuid(pk))
        return Response(ExportJobSerializer(job).data)

    @extend_schema(request=ExportCreateSerializer, responses={201: ExportJobSerializer, **ERRORS})
    def create(self, request: Request) -> Response:
        s = ExportCreateSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        kind = s.validated_data["kind"]
        if kind == ExportJob.Kind.AUDIT and not self.actor.is_admin:
            raise errors.PermissionDenied("Only owners and admins can export the audit log.")
        filters = {k: v for k, v in (s.validated_data.get("filters") or {}).items() if v}
        form: Any = (UsageFilterForm if kind == ExportJob.Kind.USAGE else AuditFilterForm)(
            filters, tz=self.tz()
        )
        if not form.is_valid():
            raise _form_errors(form)
        job = export_create(
            self.actor,
            kind=kind,
            fmt=s.validated_data["format"],
            filters=form.params(),
            request=self.django_request,
        )
        return self.create_response(job, ExportJobSerializer)


# ---- schema ---------------------------------------------------------------------------------


class SchemaView(SpectacularAPIView):
    """The OpenAPI schema of /api/v1/ (signed-in users of the tenant)."""

    authentication_classes = (ApiTokenAuthentication, SessionAuthentication)
    permission_classes = (TenantRolePermission,)
    read_role = Role.VIEWER
    write_role = Role.ADMIN
    write_roles: ClassVar[dict[str, str]] = {}
    urlconf = "audit.urls_api"
    custom_settings = {
        "TITLE": "TokenScope API",
        "VERSION": "1.0.0",
        "SCHEMA_PATH_PREFIX": "/api/v1",
    }
