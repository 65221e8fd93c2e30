"""Hourly rollups of usage records: what every dashboard, report and summary reads.

Two cubes, maintained incrementally by `audit.rollups.rollup_apply` in the transaction that
writes (or reprices) the records, keyed by the UTC hour the call started in:

- UsageRollup: spend and tokens by model, project, cost center, proxy key, key owner, status.
- UsageClassRollup: requests and spend by category, sensitivity or relevance decile (one dim
  per row), with project and cost center (so those filters still apply to these charts).

Dimension columns are plain ids (no foreign keys) so purges and rebuilds are simple SQL; the
unique constraints treat NULL as a value (PostgreSQL 15 NULLS NOT DISTINCT) so an upsert finds
the row of "no project" too.
"""

from django.db import models


class CostMetrics(models.Model):
    """Dimensions and sums shared by the hourly and the daily cost cubes."""

    model = models.CharField(max_length=100)
    project_id = models.BigIntegerField(null=True)
    cost_center_id = models.BigIntegerField(null=True)
    proxy_key_id = models.UUIDField(null=True)
    key_owner_id = models.BigIntegerField(null=True)
    status_code = models.PositiveSmallIntegerField()

    requests = models.BigIntegerField(default=0)
    unpriced_requests = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cache_creation_input_tokens = models.BigIntegerField(default=0)
    cache_creation_5m_input_tokens = models.BigIntegerField(default=0)
    cache_creation_1h_input_tokens = models.BigIntegerField(default=0)
    cache_read_input_tokens = models.BigIntegerField(default=0)
    web_search_requests = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=30, decimal_places=12, default=0)
    cache_read_usd = models.DecimalField(max_digits=30, decimal_places=12, default=0)
    cache_write_5m_usd = models.DecimalField(max_digits=30, decimal_places=12, default=0)
    cache_write_1h_usd = models.DecimalField(max_digits=30, decimal_places=12, default=0)
    latency_ms_sum = models.FloatField(default=0)

    class Meta:
        abstract = True


class UsageRollup(CostMetrics):
    """Cost cube by UTC hour (the source of truth of the other cubes)."""

    hour = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "hour",
                    "model",
                    "project_id",
                    "cost_center_id",
                    "proxy_key_id",
                    "key_owner_id",
                    "status_code",
                ],
                name="usage_rollup_dims",
                nulls_distinct=False,
            )
        ]
        indexes = [models.Index(fields=["hour"], name="usage_rollup_hour")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h {self.model} ×{self.requests}"


class UsageClassRollup(models.Model):
    """Requests and spend per hour by one classification dimension at a time.

    `dim` is "category", "sensitivity" or "relevance" (value: the decile 0..9, or "none" when
    unscored); every record adds one row per dim. Keeping the dims apart keeps this cube small
    (hours × projects × about 20 values) where their product would be as large as the records.
    """

    hour = models.DateTimeField()
    project_id = models.BigIntegerField(null=True)
    cost_center_id = models.BigIntegerField(null=True)
    dim = models.CharField(max_length=12)
    value = models.CharField(max_length=60)

    requests = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=30, decimal_places=12, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "project_id", "cost_center_id", "dim", "value"],
                name="usage_class_rollup_dims",
                nulls_distinct=False,
            )
        ]
        indexes = [models.Index(fields=["hour"], name="usage_class_rollup_hour")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h {self.dim}={self.value} ×{self.requests}"


class UsageDailyRollup(CostMetrics):
    """Cost cube by local day in the tenant's time zone `tz` (rebuilt when the zone changes).

    Whole-day periods (every dashboard period) read this cube: about 24 times fewer rows.
    """

    day = models.DateField()
    tz = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "day",
                    "tz",
                    "model",
                    "project_id",
                    "cost_center_id",
                    "proxy_key_id",
                    "key_owner_id",
                    "status_code",
                ],
                name="usage_daily_rollup_dims",
                nulls_distinct=False,
            )
        ]
        indexes = [
            models.Index(fields=["tz", "day"], name="usage_daily_rollup_tz_day"),
            models.Index(fields=["day"], name="usage_daily_rollup_day"),  # retention purge
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.model} ×{self.requests}"


class UsageClassDailyRollup(models.Model):
    """UsageClassRollup by local day in the tenant's time zone `tz`."""

    day = models.DateField()
    tz = models.CharField(max_length=64)
    project_id = models.BigIntegerField(null=True)
    cost_center_id = models.BigIntegerField(null=True)
    dim = models.CharField(max_length=12)
    value = models.CharField(max_length=60)

    requests = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=30, decimal_places=12, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "tz", "project_id", "cost_center_id", "dim", "value"],
                name="usage_class_daily_rollup_dims",
                nulls_distinct=False,
            )
        ]
        indexes = [
            models.Index(fields=["tz", "day"], name="usage_class_daily_tz_day"),
            models.Index(fields=["day"], name="usage_class_daily_day"),  # retention purge
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.dim}={self.value} ×{self.requests}"


class UsageCacheWaste(models.Model):
    """Estimated cache writes never read back within their TTL, per key, model and UTC hour.

    Recomputed (not summed) for the hours a batch touches; see docs/insight.md for the method.
    Only hours with an estimate above zero have a row.
    """

    hour = models.DateTimeField()
    proxy_key_id = models.UUIDField(null=True)
    model = models.CharField(max_length=100)
    project_id = models.BigIntegerField(null=True)
    cost_center_id = models.BigIntegerField(null=True)
    unread_5m_tokens = models.BigIntegerField(default=0)
    unread_1h_tokens = models.BigIntegerField(default=0)
    unread_5m_usd = models.DecimalField(max_digits=30, decimal_places=12, default=0)
    unread_1h_usd = models.DecimalField(max_digits=30, decimal_places=12, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "proxy_key_id", "model"],
                name="usage_cache_waste_dims",
                nulls_distinct=False,
            )
        ]
        indexes = [models.Index(fields=["hour"], name="usage_cache_waste_hour")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h {self.model} unread"


class InsightSettings(models.Model):
    """Per-tenant settings of the insight pages (one row, created on first read)."""

    hide_prompts_from_viewers = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return "Insight settings"
