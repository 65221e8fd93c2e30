"""A tenant's own classification taxonomy and its relevance-flagging setting.

Rows are seeded lazily from the shipped default taxonomy the first time a tenant's taxonomy is
read (audit.classification.selectors.tenant_taxonomy). Default categories can be renamed,
disabled or given extra examples; tenants can add categories of their own.
"""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class TenantCategory(models.Model):
    key = models.SlugField(max_length=60, unique=True)
    label = models.CharField(max_length=80)
    description = models.TextField(blank=True)
    # A few example prompts (strings) written by the tenant; used for similarity scoring.
    examples = models.JSONField(default=list, blank=True)
    is_enabled = models.BooleanField(default=True)
    # True for the shipped categories: they can be renamed or disabled, not deleted.
    is_default = models.BooleanField(default=False)
    position = models.PositiveSmallIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "key"]
        verbose_name_plural = "tenant categories"

    def __str__(self) -> str:
        return self.label


class ClassificationSettings(models.Model):
    """One row per tenant (created on first read)."""

    # Requests whose relevance score is below this are flagged for review (never blocked).
    relevance_threshold = models.FloatField(
        default=0.5, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    flag_low_relevance = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "classification settings"

    def __str__(self) -> str:
        return "Classification settings"
