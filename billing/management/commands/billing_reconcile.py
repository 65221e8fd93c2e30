from typing import Any

from django_tenants.utils import schema_context

from billing.services import billing_reconcile
from tokenscope.lib.commands import JsonCommand


class Command(JsonCommand):
    help = "Compare subscriptions with Paddle's API, repair drift, retry stuck webhook events."

    def run(self, **options: Any) -> dict[str, Any]:
        with schema_context("public"):
            return billing_reconcile()
