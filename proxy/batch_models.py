from django.conf import settings
from django.db import models


class ProxyBatch(models.Model):
    """A message batch created through the proxy: whose it is, and whether it has been metered."""

    id = models.CharField(primary_key=True, max_length=80)  # Anthropic's msgbatch_… id
    proxy_key = models.ForeignKey("proxy.ProxyKey", on_delete=models.PROTECT, related_name="+")
    project = models.ForeignKey("proxy.Project", on_delete=models.PROTECT, related_name="+")
    cost_center = models.ForeignKey("proxy.CostCenter", on_delete=models.PROTECT, related_name="+")
    key_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    request_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    metered_at = models.DateTimeField(null=True, blank=True)
    result_count = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(
                fields=["created_at"], name="batch_unmetered", condition=models.Q(metered_at=None)
            )
        ]

    def __str__(self) -> str:
        return self.id
