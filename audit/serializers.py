"""API shapes. Usage rows are built by audit.exports (one code path for the API and exports)."""

from rest_framework import serializers

from audit.exports import AUDIT_FIELDS
from audit.models import AuditEvent, ExportJob
from proxy.models import CostCenter, Project, ProxyKey


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    field = serializers.CharField(allow_null=True)


class UsageRecordSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    created_at = serializers.DateTimeField()
    model = serializers.CharField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cache_creation_input_tokens = serializers.IntegerField()
    cache_creation_5m_input_tokens = serializers.IntegerField()
    cache_creation_1h_input_tokens = serializers.IntegerField()
    cache_read_input_tokens = serializers.IntegerField()
    web_search_requests = serializers.IntegerField()
    service_tier = serializers.CharField()
    cost_usd = serializers.CharField(help_text="Exact decimal string, USD.")
    project = serializers.CharField(allow_null=True, help_text="Project name.")
    cost_center = serializers.CharField(allow_null=True, help_text="Cost center code.")
    proxy_key_id = serializers.UUIDField(allow_null=True)
    status_code = serializers.IntegerField()
    stop_reason = serializers.CharField()
    latency_ms = serializers.FloatField()
    overhead_ms = serializers.FloatField()
    ip_address = serializers.CharField(allow_null=True)
    user_agent = serializers.CharField()
    prompt_text = serializers.CharField(
        allow_null=True, help_text="Null in Privacy Mode or when hidden from viewers."
    )
    prompt_sha256 = serializers.CharField()
    category = serializers.CharField()
    relevance_score = serializers.FloatField(allow_null=True)
    sensitivity = serializers.CharField()
    detectors = serializers.ListField(
        child=serializers.CharField(), help_text="Names of the detectors that fired, never matches."
    )
    flagged_for_review = serializers.BooleanField()
    upstream_request_id = serializers.CharField()


class UsageRecordPageSerializer(serializers.Serializer):
    results = UsageRecordSerializer(many=True)
    next = serializers.CharField(allow_null=True, help_text="URL of the next page, or null.")


class SummaryRowSerializer(serializers.Serializer):
    day = serializers.DateField(required=False)
    week = serializers.DateField(required=False)
    month = serializers.DateField(required=False)
    model = serializers.CharField(required=False)
    project = serializers.IntegerField(required=False, allow_null=True)
    project_name = serializers.CharField(required=False)
    cost_center = serializers.IntegerField(required=False, allow_null=True)
    cost_center_name = serializers.CharField(required=False)
    key = serializers.UUIDField(required=False, allow_null=True)
    key_name = serializers.CharField(required=False)
    category = serializers.CharField(required=False)
    sensitivity = serializers.CharField(required=False)
    requests = serializers.IntegerField()
    input_tokens = serializers.IntegerField(required=False)
    output_tokens = serializers.IntegerField(required=False)
    cache_creation_input_tokens = serializers.IntegerField(required=False)
    cache_creation_5m_input_tokens = serializers.IntegerField(required=False)
    cache_creation_1h_input_tokens = serializers.IntegerField(required=False)
    cache_read_input_tokens = serializers.IntegerField(required=False)
    web_search_requests = serializers.IntegerField(required=False)
    tokens = serializers.IntegerField(required=False)
    error_requests = serializers.IntegerField(required=False)
    unpriced_requests = serializers.IntegerField(required=False)
    cost_usd = serializers.CharField()
    cache_read_usd = serializers.CharField(required=False)
    cache_write_5m_usd = serializers.CharField(required=False)
    cache_write_1h_usd = serializers.CharField(required=False)


class SummarySerializer(serializers.Serializer):
    group_by = serializers.ListField(child=serializers.CharField())
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    results = SummaryRowSerializer(many=True)


class ProjectSerializer(serializers.ModelSerializer):
    default_cost_center = serializers.PrimaryKeyRelatedField(
        queryset=CostCenter.objects.all(), allow_null=True, required=False
    )

    class Meta:
        model = Project
        fields = ["id", "name", "purpose", "default_cost_center", "archived_at", "created_at"]
        read_only_fields = ["id", "archived_at", "created_at"]


class CostCenterSerializer(serializers.ModelSerializer):
    class Meta:
        model = CostCenter
        fields = ["id", "code", "name", "owner_email", "archived_at", "created_at"]
        read_only_fields = ["id", "archived_at", "created_at"]


class ProxyKeySerializer(serializers.ModelSerializer):
    project = serializers.PrimaryKeyRelatedField(queryset=Project.objects.all())
    cost_center = serializers.PrimaryKeyRelatedField(queryset=CostCenter.objects.all())
    owner: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="email", read_only=True, allow_null=True
    )
    status = serializers.CharField(read_only=True)

    class Meta:
        model = ProxyKey
        fields = [
            "id",
            "name",
            "prefix",
            "project",
            "cost_center",
            "owner",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
            "allowed_models",
            "status",
        ]
        read_only_fields = [
            "id",
            "prefix",
            "owner",
            "created_at",
            "revoked_at",
            "last_used_at",
            "status",
        ]


class ProxyKeyCreatedSerializer(ProxyKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The proxy key; shown only once.")

    class Meta(ProxyKeySerializer.Meta):
        fields = [*ProxyKeySerializer.Meta.fields, "key"]


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = list(AUDIT_FIELDS)  # the same columns as the audit log's exports


class AuditEventPageSerializer(serializers.Serializer):
    results = AuditEventSerializer(many=True)
    next = serializers.CharField(allow_null=True)


class ExportJobSerializer(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = ExportJob
        fields = [
            "id",
            "kind",
            "format",
            "filters",
            "status",
            "row_count",
            "size_bytes",
            "created_at",
            "finished_at",
            "expires_at",
            "download_url",
        ]
        read_only_fields = [
            "id",
            "status",
            "row_count",
            "size_bytes",
            "created_at",
            "finished_at",
            "expires_at",
            "download_url",
        ]

    def get_download_url(self, job: ExportJob) -> str | None:
        if job.status != ExportJob.Status.DONE or job.is_expired:
            return None
        return f"/exports/{job.pk}/download/"


class ExportCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ExportJob.Kind.choices)
    format = serializers.ChoiceField(choices=ExportJob.Format.choices)
    filters = serializers.DictField(
        child=serializers.CharField(allow_blank=True, max_length=200), required=False
    )


class BudgetSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=120)
    scope = serializers.ChoiceField(choices=["tenant", "project", "cost_center", "key", "user"])
    target = serializers.CharField(
        required=False,
        allow_null=True,
        help_text="Id of the project, cost center, proxy key or user the budget is on.",
    )
    amount_usd = serializers.DecimalField(max_digits=14, decimal_places=2, coerce_to_string=True)
    period = serializers.ChoiceField(choices=["day", "week", "month"])
    thresholds = serializers.ListField(child=serializers.IntegerField(), required=False)
    block = serializers.BooleanField(default=False)
    spent_usd = serializers.DecimalField(
        max_digits=24, decimal_places=12, read_only=True, coerce_to_string=True
    )
    reserved_usd = serializers.DecimalField(
        max_digits=24, decimal_places=12, read_only=True, coerce_to_string=True
    )
    projected_usd = serializers.DecimalField(
        max_digits=24, decimal_places=2, read_only=True, coerce_to_string=True
    )
    period_start = serializers.DateTimeField(read_only=True)
    resets_at = serializers.DateTimeField(read_only=True)
