import pytest
from django.test import override_settings

from conftest import owner_of, tenant_client
from privacy.forms import TenantResidencyAdminForm
from tenants.models import Plan


def _form(tenant, plan_slug, region):
    data = {
        "name": tenant.name,
        "slug": tenant.slug,
        "plan": Plan.objects.get(slug=plan_slug).pk,
        "retention_days_override": "",
        "time_zone": tenant.time_zone,
        "week_starts_on": tenant.week_starts_on,
        "region": region,
        "status": tenant.status,
    }
    return TenantResidencyAdminForm(data=data, instance=tenant)


@pytest.mark.django_db
def test_operators_may_not_place_a_non_enterprise_tenant_in_the_eu(tenant_a):
    form = _form(tenant_a, "business", "eu")

    assert not form.is_valid()
    assert "Enterprise" in str(form.errors["region"])


@pytest.mark.django_db
@pytest.mark.parametrize("region", ["eu", "apac"])
def test_operators_may_place_an_enterprise_tenant_in_another_region(tenant_a, region):
    form = _form(tenant_a, "enterprise", region)

    assert form.is_valid(), form.errors


@pytest.mark.django_db
def test_a_tenant_of_another_region_is_refused_with_421(tenant_a):
    client = tenant_client(tenant_a, owner_of(tenant_a))

    with override_settings(REGION="eu"):
        response = client.get("/")

    assert response.status_code == 421
    assert b"US East" in response.content
