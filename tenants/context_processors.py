from django.conf import settings
from django.http import HttpRequest


def tenancy(request: HttpRequest) -> dict[str, object]:
    tenant = getattr(request, "tenant", None)
    is_public = tenant is None or tenant.schema_name == settings.PUBLIC_SCHEMA_NAME
    return {"tenant": None if is_public else tenant, "base_domain": settings.BASE_DOMAIN}
