import pytest

from accounts.models import Role
from conftest import make_user
from privacy.adapters import USAGE_TOTALS, register_usage_totals
from privacy.selectors import platform_totals


@pytest.mark.django_db
def test_the_platform_page_shows_totals_and_no_person(admin_client, tenant_a, tenant_b):
    person = make_user(tenant_a, Role.MEMBER, email="someone-specific@example.com")

    response = admin_client.get("/admin/platform/")

    assert response.status_code == 200
    content = response.content.decode()
    assert "Platform totals" in content
    assert person.email not in content
    assert "owner@tenant-a.example.com" not in content
    assert "Tenant A" not in content
    totals = platform_totals()
    assert totals["tenants"] >= 2
    free = next(row for row in totals["plans"] if row["plan"] == "Free")
    assert free["tenants"] >= 2
    assert free["members"] >= 3


@pytest.mark.django_db
def test_usage_totals_come_from_the_registered_source(tenant_a):
    from decimal import Decimal

    def fake_rollup():
        return {"free": {"requests": 12, "spend": Decimal("1.50")}}

    register_usage_totals(fake_rollup)
    try:
        free = next(row for row in platform_totals()["plans"] if row["plan"] == "Free")
    finally:
        USAGE_TOTALS.remove(fake_rollup)

    assert free["requests"] == 12
    assert free["spend"] == Decimal("1.50")


@pytest.mark.django_db
def test_the_platform_page_is_for_operators_only(client, tenant_a):
    response = client.get("/admin/platform/")

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
