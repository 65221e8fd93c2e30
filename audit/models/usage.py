from django.conf import settings
from django.contrib.postgres.indexes import BrinIndex
from django.db import models

from tokenscope.lib.ids import uuid7


class UsageRecordQuerySet(models.QuerySet["UsageRecord"]):
    def priced(self) -> "UsageRecordQuerySet":
        return self.filter(is_priced=True)


class UsageRecord(models.Model):
    """One call through the proxy, whatever its outcome: what was asked, what it cost, who pays."""

    class Kind(models.TextChoices):
        MESSAGES = "messages", "Messages"
        COUNT_TOKENS = "count_tokens", "Count tokens"
        MODELS = "models", "Models"
        BATCH = "batch", "Batch request"
        BATCH_RESULT = "batch_result", "Batch result"

    class Sensitivity(models.TextChoices):
        PUBLIC = "public", "Public"
        INTERNAL = "internal", "Internal"
        CONFIDENTIAL = "confidential", "Confidential"
        RESTRICTED = "restricted", "Restricted"

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    created_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    endpoint = models.CharField(max_length=80)
    model = models.CharField(max_length=100, blank=True)
    is_stream = models.BooleanField(default=False)
    status_code = models.PositiveSmallIntegerField()
    error_type = models.CharField(max_length=40, blank=True)
    stop_reason = models.CharField(max_length=40, blank=True)

    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cache_creation_input_tokens = models.PositiveIntegerField(default=0)
    cache_creation_5m_input_tokens = models.PositiveIntegerField(default=0)
    cache_creation_1h_input_tokens = models.PositiveIntegerField(default=0)
    cache_read_input_tokens = models.PositiveIntegerField(default=0)
    thinking_tokens = models.PositiveIntegerField(default=0)
    web_search_requests = models.PositiveIntegerField(default=0)
    web_fetch_requests = models.PositiveIntegerField(default=0)
    service_tier = models.CharField(max_length=20, blank=True)
    inference_geo = models.CharField(max_length=20, blank=True)
    speed = models.CharField(max_length=20, blank=True)
    usage_raw = models.JSONField(default=dict, blank=True)

    cost_usd = models.DecimalField(max_digits=24, decimal_places=12, default=0)
    cost_breakdown = models.JSONField(default=dict, blank=True)
    price_book_version = models.CharField(max_length=40, blank=True)
    is_priced = models.BooleanField(default=True)
    # Earlier figures kept by `usage_reprice`: [{cost_usd, price_book_version, repriced_at}].
    previous_costs = models.JSONField(default=list, blank=True)

    # No single-column index: the (column, -created_at) indexes below serve every lookup by
    # these keys (PROTECT checks included), and each index costs every insert its update.
    project = models.ForeignKey(
        "proxy.Project", null=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    cost_center = models.ForeignKey(
        "proxy.CostCenter", null=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    proxy_key = models.ForeignKey(
        "proxy.ProxyKey", null=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    key_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    batch_id = models.CharField(max_length=80, blank=True)
    custom_id = models.CharField(max_length=80, blank=True)

    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    latency_ms = models.FloatField(default=0)
    upstream_ms = models.FloatField(null=True, blank=True)
    ttfb_ms = models.FloatField(null=True, blank=True)
    overhead_ms = models.FloatField(default=0)
    upstream_request_id = models.CharField(max_length=80, blank=True)
    client_disconnected = models.BooleanField(default=False)

    # Privacy Mode off: the prompt (system + messages); on: null. The hash is always kept.
    prompt_text = models.TextField(null=True, blank=True)
    prompt_sha256 = models.CharField(max_length=64, blank=True)

    category = models.CharField(max_length=60, blank=True)
    relevance_score = models.FloatField(null=True, blank=True)
    sensitivity = models.CharField(max_length=20, choices=Sensitivity.choices, blank=True)
    detectors = models.JSONField(default=list, blank=True)
    flagged_for_review = models.BooleanField(default=False)

    objects = UsageRecordQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Purges by age and time-range scans read this small index (see docs/storage.md).
            BrinIndex(fields=["created_at"], name="usage_created_brin"),
            models.Index(fields=["-created_at", "id"], name="usage_created_desc"),
            models.Index(fields=["project", "-created_at"], name="usage_project_time"),
            models.Index(fields=["cost_center", "-created_at"], name="usage_costcenter_time"),
            models.Index(fields=["proxy_key", "-created_at"], name="usage_key_time"),
            models.Index(fields=["model", "-created_at"], name="usage_model_time"),
            models.Index(fields=["status_code", "-created_at"], name="usage_status_time"),
            models.Index(fields=["category", "-created_at"], name="usage_category_time"),
            models.Index(fields=["sensitivity", "-created_at"], name="usage_sensitivity_time"),
            models.Index(
                fields=["created_at"],
                name="usage_unpriced",
                condition=models.Q(is_priced=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.model} {self.created_at:%Y-%m-%d %H:%M:%S}"
