"""Reads for the insight pages, exports and the API. Charts and summaries read only rollups."""

import base64
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import Role, User
from audit.forms import AuditFilterForm, UsageFilter, UsageFilterForm
from audit.models import ApiToken, AuditEvent, ExportJob, InsightSettings, UsageRecord
from audit.rollups import daily_ensure
from proxy.models import CostCenter, Project, ProxyKey
from proxy.pricing import BOOK
from tenants.models import Tenant
from tokenscope.lib.errors import DomainError

ZERO = Decimal(0)


def current_tenant() -> Tenant:
    """The tenant whose schema the connection uses (a real row, also under schema_context)."""
    tenant = getattr(connection, "tenant", None)
    if isinstance(tenant, Tenant):
        return tenant
    return Tenant.objects.get(schema_name=connection.schema_name)  # type: ignore[attr-defined]


# ---- settings -------------------------------------------------------------------------------


def insight_settings() -> InsightSettings:
    settings, _ = InsightSettings.objects.get_or_create(pk=1)
    return settings


def prompt_visible(user: User) -> bool:
    """Whether `user` may read (and search) stored prompt text in this tenant."""
    if user.role != Role.VIEWER:
        return True
    return not insight_settings().hide_prompts_from_viewers


# ---- usage records --------------------------------------------------------------------------


def usage_queryset(f: UsageFilter) -> QuerySet[UsageRecord]:
    """Records matching a filter, newest first (ties broken by id), for keyset pages."""
    qs = UsageRecord.objects.all()
    if f.since is not None:
        qs = qs.filter(created_at__gte=f.since)
    if f.until is not None:
        qs = qs.filter(created_at__lt=f.until)
    if f.model:
        qs = qs.filter(model=f.model)
    if f.project is not None:
        qs = qs.filter(project_id=f.project)
    if f.cost_center is not None:
        qs = qs.filter(cost_center_id=f.cost_center)
    if f.proxy_key is not None:
        qs = qs.filter(proxy_key_id=f.proxy_key)
    if f.status == "ok":
        qs = qs.filter(status_code__lt=400)
    elif f.status == "error":
        qs = qs.filter(status_code__gte=400)
    elif f.status:
        qs = qs.filter(status_code=int(f.status))
    if f.category:
        qs = qs.filter(category=f.category)
    if f.sensitivity:
        qs = qs.filter(sensitivity=f.sensitivity)
    if f.relevance_min is not None:
        qs = qs.filter(relevance_score__gte=f.relevance_min)
    if f.relevance_max is not None:
        qs = qs.filter(relevance_score__lte=f.relevance_max)
    if f.flagged:
        qs = qs.filter(flagged_for_review=True)
    if f.q:
        # Bounded: the form limits a search to SEARCH_MAX_DAYS (see docs/insight.md).
        qs = qs.filter(prompt_text__icontains=f.q)
    return qs.order_by("-created_at", "id")


def cursor_encode(record: UsageRecord) -> str:
    raw = f"{record.created_at.isoformat()}|{record.pk}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def cursor_decode(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, pk = raw.partition("|")
        moment = datetime.fromisoformat(at)
        if timezone.is_naive(moment):
            raise ValueError(at)
        return moment, uuid.UUID(pk)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DomainError("Invalid cursor.", field="cursor") from exc


def usage_page(
    qs: QuerySet[UsageRecord], *, cursor: str | None, limit: int
) -> tuple[list[UsageRecord], str | None]:
    """One keyset page (never OFFSET): the rows after `cursor` and the cursor of the next page."""
    if cursor:
        at, pk = cursor_decode(cursor)
        qs = qs.filter(created_at__lte=at).filter(
            Q(created_at__lt=at) | Q(created_at=at, id__gt=pk)
        )
    rows = list(qs.select_related("project", "cost_center", "proxy_key")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (cursor_encode(rows[-1]) if more and rows else None)


# ---- audit events ---------------------------------------------------------------------------


def audit_queryset(data: dict[str, Any]) -> QuerySet[AuditEvent]:
    qs = AuditEvent.objects.all()
    if data.get("since"):
        qs = qs.filter(created_at__gte=data["since"])
    if data.get("until"):
        qs = qs.filter(created_at__lt=data["until"])
    if data.get("action"):
        qs = qs.filter(action__startswith=data["action"])
    if data.get("actor"):
        qs = qs.filter(actor_email__icontains=data["actor"])
    if data.get("object_type"):
        qs = qs.filter(object_type=data["object_type"])
    if data.get("ip_address"):
        qs = qs.filter(ip_address=data["ip_address"])
    return qs.order_by("-created_at", "-id")


def export_queryset(kind: str, params: dict[str, str]) -> QuerySet[Any]:
    """The rows of an export whose filter was stored as query-string pairs."""
    tz = current_tenant().time_zone
    if kind == ExportJob.Kind.USAGE:
        form: Any = UsageFilterForm(params, tz=tz)
        if not form.is_valid():
            raise DomainError("The export's filter is no longer valid.")
        return usage_queryset(form.usage_filter())
    form = AuditFilterForm(params, tz=tz)
    if not form.is_valid():
        raise DomainError("The export's filter is no longer valid.")
    return audit_queryset(form.cleaned_data)


def api_token_list() -> QuerySet[ApiToken]:
    return ApiToken.objects.select_related("user", "created_by")


def export_list(user: User) -> QuerySet[ExportJob]:
    qs = ExportJob.objects.all()
    return qs if user.is_admin else qs.filter(created_by=user)


# ---- rollups --------------------------------------------------------------------------------


@dataclass
class RollupScope:
    """A period in the tenant's time zone, a bucket grain and the rollup filters."""

    since: datetime
    until: datetime
    grain: str = "day"
    tz: str = "UTC"
    week_starts_on: str = "monday"
    model: str = ""
    project: int | None = None
    cost_center: int | None = None
    proxy_key: uuid.UUID | None = None
    category: str = ""

    @classmethod
    def from_form(cls, data: dict[str, Any], tenant: Any) -> "RollupScope":
        return cls(
            since=data["since"],
            until=data["until"],
            grain=data.get("grain") or "day",
            tz=tenant.time_zone,
            week_starts_on=tenant.week_starts_on,
            model=data.get("model") or "",
            project=data.get("project"),
            cost_center=data.get("cost_center"),
            proxy_key=data.get("proxy_key"),
            category=data.get("category") or "",
        )

    @property
    def shift_days(self) -> int:
        return 1 if self.grain == "week" and self.week_starts_on == "sunday" else 0

    @property
    def daily(self) -> bool:
        """Whole local days: read the daily cubes (about 24 times fewer rows)."""
        zone = ZoneInfo(self.tz)
        return all(
            moment.astimezone(zone).time() == time.min for moment in (self.since, self.until)
        )

    def cost_table(self) -> str:
        return "audit_usagedailyrollup" if self.daily else "audit_usagerollup"

    def class_table(self) -> str:
        return "audit_usageclassdailyrollup" if self.daily else "audit_usageclassrollup"

    def bucket_sql(self) -> tuple[str, list[Any]]:
        """SQL for the local date of a row's bucket (UTC hours → tenant time zone)."""
        if self.daily:
            return (
                "(date_trunc(%s, day + %s * interval '1 day') - %s * interval '1 day')::date",
                [self.grain, self.shift_days, self.shift_days],
            )
        return (
            "(date_trunc(%s, (hour AT TIME ZONE %s) + %s * interval '1 day')"
            " - %s * interval '1 day')::date",
            [self.grain, self.tz, self.shift_days, self.shift_days],
        )

    def where(self, *, cost_cube: bool, hourly: bool = False) -> tuple[str, list[Any]]:
        if self.daily and not hourly:
            zone = ZoneInfo(self.tz)
            clauses = ["tz = %s", "day >= %s", "day < %s"]
            params: list[Any] = [
                self.tz,
                self.since.astimezone(zone).date(),
                self.until.astimezone(zone).date(),
            ]
        else:
            clauses = ["hour >= %s", "hour < %s"]
            params = [self.since, self.until]
        if self.project is not None:
            clauses.append("project_id = %s")
            params.append(self.project)
        if self.cost_center is not None:
            clauses.append("cost_center_id = %s")
            params.append(self.cost_center)
        if cost_cube:
            if self.model:
                clauses.append("model = %s")
                params.append(self.model)
            if self.proxy_key is not None:
                clauses.append("proxy_key_id = %s")
                params.append(self.proxy_key)
        return " AND ".join(clauses), params

    def buckets(self) -> list[date]:
        """Every bucket start in the period, so charts show empty days too."""
        tz = ZoneInfo(self.tz)
        day = self.since.astimezone(tz).date()
        last = (self.until - timedelta(microseconds=1)).astimezone(tz).date()
        if self.grain == "month":
            day = day.replace(day=1)
        elif self.grain == "week":
            start_weekday = 6 if self.week_starts_on == "sunday" else 0
            day -= timedelta(days=(day.weekday() - start_weekday) % 7)
        out: list[date] = []
        while day <= last and len(out) < 5000:
            out.append(day)
            if self.grain == "month":
                day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
            else:
                day += timedelta(days=7 if self.grain == "week" else 1)
        return out


METRICS_SQL = """
    sum(requests) AS requests,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_creation_input_tokens) AS cache_creation_input_tokens,
    sum(cache_creation_5m_input_tokens) AS cache_creation_5m_input_tokens,
    sum(cache_creation_1h_input_tokens) AS cache_creation_1h_input_tokens,
    sum(cache_read_input_tokens) AS cache_read_input_tokens,
    sum(web_search_requests) AS web_search_requests,
    sum(cost_usd) AS cost_usd,
    sum(cache_read_usd) AS cache_read_usd,
    sum(cache_write_5m_usd) AS cache_write_5m_usd,
    sum(cache_write_1h_usd) AS cache_write_1h_usd,
    coalesce(sum(requests) FILTER (WHERE status_code >= 400), 0) AS error_requests,
    sum(unpriced_requests) AS unpriced_requests
"""
METRIC_NAMES = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_creation_5m_input_tokens",
    "cache_creation_1h_input_tokens",
    "cache_read_input_tokens",
    "web_search_requests",
    "cost_usd",
    "cache_read_usd",
    "cache_write_5m_usd",
    "cache_write_1h_usd",
    "error_requests",
    "unpriced_requests",
)
DIMENSIONS = ("b", "model", "project_id", "cost_center_id", "proxy_key_id", "key_owner_id")


def _fetch(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _metrics(values: Iterable[Any]) -> dict[str, Any]:
    out = dict(zip(METRIC_NAMES, values, strict=True))
    for name in METRIC_NAMES:
        if out[name] is None:
            out[name] = ZERO if name.endswith("_usd") else 0
        elif not name.endswith("_usd"):
            out[name] = int(out[name])
    out["tokens"] = (
        out["input_tokens"]
        + out["output_tokens"]
        + out["cache_creation_input_tokens"]
        + out["cache_read_input_tokens"]
    )
    return out


@dataclass
class Labels:
    projects: dict[int, str]
    cost_centers: dict[int, str]
    keys: dict[uuid.UUID, str]
    users: dict[int, str]

    @classmethod
    def load(cls) -> "Labels":
        return cls(
            projects=dict(Project.objects.values_list("id", "name")),
            cost_centers={
                pk: f"{code} · {name}"
                for pk, code, name in CostCenter.objects.values_list("id", "code", "name")
            },
            keys={
                pk: name or f"{prefix}…"
                for pk, name, prefix in ProxyKey.objects.values_list("id", "name", "prefix")
            },
            users=dict(User.objects.values_list("id", "email")),
        )

    def label(self, dim: str, value: Any) -> str:
        if value is None or value == "":
            return "(none)"
        tables: dict[str, dict[Any, str]] = {
            "project_id": self.projects,
            "cost_center_id": self.cost_centers,
            "proxy_key_id": self.keys,
            "key_owner_id": self.users,
        }
        table = tables.get(dim, {})
        return table.get(value, str(value))


def cache_read_rate_ratio(model: str) -> Decimal | None:
    """Uncached input rate ÷ cache read rate of a model today (10 for every Claude model)."""
    entry = BOOK.entry(model, timezone.now()) if model else None
    if entry is None or not entry.rates.cache_read:
        return None
    return entry.rates.input / entry.rates.cache_read


def _unread_cache_writes(scope: RollupScope) -> dict[str, Any]:
    """Cache writes never read back within their TTL: the maintained estimate (docs/insight.md)."""
    where, params = scope.where(cost_cube=True, hourly=True)
    sql = f"""
        SELECT coalesce(sum(unread_5m_tokens), 0), coalesce(sum(unread_1h_tokens), 0),
               coalesce(sum(unread_5m_usd), 0), coalesce(sum(unread_1h_usd), 0)
        FROM audit_usagecachewaste WHERE {where}
    """  # noqa: S608 - where is built from constant fragments
    n5, n1, usd5, usd1 = _fetch(sql, params)[0]
    return {
        "unread_5m_tokens": int(n5),
        "unread_1h_tokens": int(n1),
        "unread_5m_usd": Decimal(usd5).quantize(Decimal("0.000001")),
        "unread_1h_usd": Decimal(usd1).quantize(Decimal("0.000001")),
        "unread_usd": Decimal(usd5 + usd1).quantize(Decimal("0.000001")),
    }


def _cache_economics(total: dict[str, Any], by_model: list[dict[str, Any]]) -> dict[str, Any]:
    denominator = (
        total["input_tokens"]
        + total["cache_read_input_tokens"]
        + total["cache_creation_input_tokens"]
    )
    saved = ZERO
    for row in by_model:
        ratio = cache_read_rate_ratio(row["key"] or "")
        if ratio is not None:
            saved += row["cache_read_usd"] * (ratio - 1)
    return {
        "hit_rate": (total["cache_read_input_tokens"] / denominator) if denominator else 0.0,
        "saved_usd": saved.quantize(Decimal("0.000001")),
        "read_usd": total["cache_read_usd"],
        "write_5m_tokens": total["cache_creation_5m_input_tokens"],
        "write_1h_tokens": total["cache_creation_1h_input_tokens"],
        "write_5m_usd": total["cache_write_5m_usd"],
        "write_1h_usd": total["cache_write_1h_usd"],
    }


def dashboard(scope: RollupScope) -> dict[str, Any]:
    """Everything the dashboard shows, from three small grouped scans of the rollups."""
    if scope.daily:
        daily_ensure(scope.tz)
    bucket, bucket_params = scope.bucket_sql()
    where, params = scope.where(cost_cube=True)
    sql = f"""
        SELECT GROUPING({", ".join(DIMENSIONS)}) AS g, {", ".join(DIMENSIONS)}, {METRICS_SQL}
        FROM (SELECT *, {bucket} AS b FROM {scope.cost_table()} WHERE {where}) x
        GROUP BY GROUPING SETS ({", ".join(f"({d})" for d in DIMENSIONS)}, ())
    """  # noqa: S608 - constant fragments
    rows = _fetch(sql, [*bucket_params, *params])
    labels = Labels.load()
    n = len(DIMENSIONS)
    groups: dict[str, list[dict[str, Any]]] = {d: [] for d in DIMENSIONS}
    total = _metrics([None] * len(METRIC_NAMES))
    for row in rows:
        mask, dims, values = row[0], row[1 : 1 + n], row[1 + n :]
        metrics = _metrics(values)
        if mask == (1 << n) - 1:
            total = metrics
            continue
        for i, dim in enumerate(DIMENSIONS):
            if mask == ((1 << n) - 1) ^ (1 << (n - 1 - i)):
                value = dims[i]
                groups[dim].append(
                    {"key": value, "label": labels.label(dim, value) if dim != "b" else value}
                    | metrics
                )
    series_by_day = {row["key"]: row for row in groups["b"]}
    series = []
    for day in scope.buckets():
        point = series_by_day.get(day) or {"key": day} | _metrics([None] * len(METRIC_NAMES))
        series.append(point | {"label": day.isoformat()})
    for dim in DIMENSIONS[1:]:
        groups[dim].sort(key=lambda r: (-r["cost_usd"], -r["requests"]))
    return {
        "total": total,
        "series": series,
        "by_model": groups["model"],
        "by_project": groups["project_id"],
        "by_cost_center": groups["cost_center_id"],
        "by_key": groups["proxy_key_id"],
        "by_owner": groups["key_owner_id"],
        "top_keys": groups["proxy_key_id"][:10],
        "cache": _cache_economics(total, groups["model"]) | _unread_cache_writes(scope),
        **classification(scope),
    }


def classification(scope: RollupScope) -> dict[str, Any]:
    where, params = scope.where(cost_cube=False)
    sql = f"""
        SELECT dim, value, sum(requests), sum(cost_usd)
        FROM {scope.class_table()} WHERE {where}
        GROUP BY dim, value
    """  # noqa: S608 - constant fragments
    by_category, by_sensitivity = [], []
    relevance = {str(b): {"requests": 0, "cost_usd": ZERO} for b in range(10)}
    relevance["none"] = {"requests": 0, "cost_usd": ZERO}
    for dim, value, requests, cost in _fetch(sql, params):
        entry = {"requests": int(requests or 0), "cost_usd": cost or ZERO}
        if dim == "category":
            by_category.append({"key": value, "label": value or "(unclassified)"} | entry)
        elif dim == "sensitivity":
            by_sensitivity.append({"key": value, "label": value or "(none)"} | entry)
        elif value in relevance:
            relevance[value] = entry
    by_category.sort(key=lambda r: -r["requests"])
    by_sensitivity.sort(key=lambda r: -r["requests"])
    deciles = [("none", "unscored")] + [
        (str(b), f"{b / 10:.1f}–{(b + 1) / 10:.1f}") for b in range(10)
    ]
    return {
        "by_category": by_category,
        "by_sensitivity": by_sensitivity,
        "relevance": [{"key": key, "label": label} | relevance[key] for key, label in deciles],
        "classification_ignores": [
            name for name, value in (("model", scope.model), ("key", scope.proxy_key)) if value
        ],
    }


SUMMARY_DIMS = {
    "model": "model",
    "project": "project_id",
    "cost_center": "cost_center_id",
    "key": "proxy_key_id",
    "category": "category",
    "sensitivity": "sensitivity",
}
TIME_DIMS = ("day", "week", "month")


def usage_summary(scope: RollupScope, group_by: list[str]) -> list[dict[str, Any]]:
    """Totals grouped by any of day|week|month, model, project, cost_center, key, category."""
    unknown = [g for g in group_by if g not in SUMMARY_DIMS and g not in TIME_DIMS]
    if unknown:
        raise DomainError(f"Unknown group_by: {', '.join(unknown)}.", field="group_by")
    grains = [g for g in group_by if g in TIME_DIMS]
    if len(grains) > 1:
        raise DomainError("Group by at most one of day, week and month.", field="group_by")
    dims = list(dict.fromkeys(g for g in group_by if g in SUMMARY_DIMS))
    class_dims = [d for d in dims if d in ("category", "sensitivity")]
    class_cube = bool(class_dims) or bool(scope.category)
    if class_cube and (
        any(d in ("model", "key") for d in dims) or scope.model or scope.proxy_key is not None
    ):
        raise DomainError(
            "Category and sensitivity cannot be combined with model or key.", field="group_by"
        )
    if len(class_dims) > 1 or (scope.category and class_dims != ["category"]):
        raise DomainError(
            "Group by one of category and sensitivity; the category filter needs "
            "group_by=category.",
            field="group_by",
        )
    select: list[str] = []
    params: list[Any] = []
    names: list[str] = []
    if grains:
        scope.grain = grains[0]
        bucket, bucket_params = scope.bucket_sql()
        select.append(bucket)
        params += bucket_params
        names.append(grains[0])
    for d in dims:
        select.append("value" if d in ("category", "sensitivity") else SUMMARY_DIMS[d])
        names.append(d)
    where, where_params = scope.where(cost_cube=not class_cube)
    if class_cube:
        where += " AND dim = %s"
        where_params.append(class_dims[0])
        if scope.category:
            where += " AND value = %s"
            where_params.append(scope.category)
        metrics = "sum(requests), sum(cost_usd)"
        table = scope.class_table()
    else:
        metrics = METRICS_SQL
        table = scope.cost_table()
    if scope.daily:
        daily_ensure(scope.tz)
    group = f"GROUP BY {', '.join(str(i + 1) for i in range(len(select)))}" if select else ""
    order = f"ORDER BY {', '.join(str(i + 1) for i in range(len(select)))}" if select else ""
    head = ", ".join(select) + ", " if select else ""
    sql = f"SELECT {head}{metrics} FROM {table} WHERE {where} {group} {order}"  # noqa: S608
    labels = Labels.load()
    out = []
    for row in _fetch(sql, params + where_params):
        item: dict[str, Any] = {}
        for name, value in zip(names, row[: len(names)], strict=True):
            if name in TIME_DIMS:
                item[name] = value.isoformat()
            elif name in ("project", "cost_center", "key"):
                item[name] = str(value) if isinstance(value, uuid.UUID) else value
                item[f"{name}_name"] = labels.label(SUMMARY_DIMS[name], value)
            else:
                item[name] = value
        values = row[len(names) :]
        if class_cube:
            item |= {"requests": int(values[0] or 0), "cost_usd": values[1] or ZERO}
        else:
            item |= _metrics(values)
        if not select and not item.get("requests"):
            item["requests"] = item.get("requests") or 0
        out.append(item)
    return out


def month_bounds(month: date, tz: str) -> tuple[datetime, datetime]:
    zone = ZoneInfo(tz)
    first = month.replace(day=1)
    nxt = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return datetime.combine(first, time.min, zone), datetime.combine(nxt, time.min, zone)


def chargeback(month: date, *, tz: str, cost_center: int | None = None) -> list[dict[str, Any]]:
    """Per cost center for a month: totals, by project and by model (from the rollups)."""
    first = month.replace(day=1)
    nxt = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    daily_ensure(tz)
    clauses = "tz = %s AND day >= %s AND day < %s"
    params: list[Any] = [tz, first, nxt]
    if cost_center is not None:
        clauses += " AND cost_center_id = %s"
        params.append(cost_center)
    sql = f"""
        SELECT GROUPING(project_id, model), cost_center_id, project_id, model, {METRICS_SQL}
        FROM audit_usagedailyrollup WHERE {clauses}
        GROUP BY GROUPING SETS ((cost_center_id), (cost_center_id, project_id),
                                (cost_center_id, model))
        ORDER BY cost_center_id NULLS LAST
    """  # noqa: S608 - constant fragments
    labels = Labels.load()
    centers: dict[Any, dict[str, Any]] = {}
    for row in _fetch(sql, params):
        mask, cc, project, model = row[:4]
        metrics = _metrics(row[4:])
        center = centers.setdefault(
            cc,
            {
                "cost_center_id": cc,
                "cost_center": labels.label("cost_center_id", cc),
                "total": None,
                "by_project": [],
                "by_model": [],
            },
        )
        if mask == 0b11:
            center["total"] = metrics
        elif mask == 0b01:
            center["by_project"].append(
                {"key": project, "label": labels.label("project_id", project)} | metrics
            )
        else:
            center["by_model"].append({"key": model, "label": model or "(none)"} | metrics)
    for center in centers.values():
        center["by_project"].sort(key=lambda r: -r["cost_usd"])
        center["by_model"].sort(key=lambda r: -r["cost_usd"])
    return list(centers.values())
