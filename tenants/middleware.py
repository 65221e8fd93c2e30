from django.conf import settings
from django.db import connection
from django.http import Http404, HttpRequest
from django_tenants.middleware.main import TenantMainMiddleware

from tenants.models import Domain, Tenant


def public_tenant() -> Tenant:
    """The public schema as a tenant object; it has no row, its host is the base domain."""
    return Tenant(schema_name=settings.PUBLIC_SCHEMA_NAME, name="AI TokenScope", slug="public")


class TenantHostMiddleware(TenantMainMiddleware):
    """Routes the base domain to the public site and `<slug>.<base domain>` to that tenant."""

    def process_request(self, request: HttpRequest) -> None:
        connection.set_schema_to_public()  # type: ignore[attr-defined]
        hostname = self.hostname_from_request(request)
        if hostname == settings.BASE_DOMAIN or (settings.TESTING and hostname == "testserver"):
            tenant = public_tenant()
        else:
            try:
                tenant = self.get_tenant(Domain, hostname)
            except Domain.DoesNotExist as exc:
                raise Http404(f"No workspace at {hostname}") from exc
        tenant.domain_url = hostname
        request.tenant = tenant  # type: ignore[attr-defined]
        connection.set_tenant(tenant)  # type: ignore[attr-defined]
        self.setup_url_routing(request)
