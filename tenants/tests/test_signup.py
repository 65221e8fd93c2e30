import pytest
from django.db import connection
from django_tenants.utils import schema_context, schema_exists

from accounts.models import Role, User
from tenants.models import Domain, Tenant

VALID = {
    "company_name": "Acme Widgets",
    "slug": "acme",
    "name": "Ada Lovelace",
    "email": "ada@acme.example.com",
    "password": "analytical-engine-1843",
    "is_adult": "on",
    "accepts_policy": "on",
}


@pytest.mark.django_db
def test_signup_creates_tenant_schema_subdomain_and_owner(public_client):
    response = public_client.post("/signup/", VALID)

    assert response.status_code == 302
    assert response["Location"] == "http://acme.localhost/accounts/login/?welcome=1"
    tenant = Tenant.objects.get(slug="acme")
    assert tenant.name == "Acme Widgets"
    assert tenant.plan.slug == "free"
    assert tenant.privacy_mode is False
    assert tenant.region == "us-east"
    assert Domain.objects.get(tenant=tenant).domain == "acme.localhost"
    assert schema_exists(tenant.schema_name)
    with schema_context(tenant.schema_name):
        owner = User.objects.get(email="ada@acme.example.com")
        assert owner.role == Role.OWNER
        assert owner.name == "Ada Lovelace"
        assert owner.check_password("analytical-engine-1843")


@pytest.mark.django_db
def test_signup_subdomain_serves_the_sign_in_page(public_client, client):
    public_client.post("/signup/", VALID)

    response = client.get("/accounts/login/", HTTP_HOST="acme.localhost")

    assert response.status_code == 200
    assert b"Sign In" in response.content or b"Sign in" in response.content


@pytest.mark.django_db
def test_signup_derives_the_subdomain_from_the_company_name(public_client):
    response = public_client.post("/signup/", {**VALID, "slug": "", "company_name": "Big Co Ltd"})

    assert response.status_code == 302
    assert Tenant.objects.filter(slug="big-co-ltd").exists()


def _refused(public_client, data, field, text):
    tenants_before = Tenant.objects.count()
    schemas_before = _schema_count()
    response = public_client.post("/signup/", data)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors, errors
    assert text in " ".join(errors[field])
    assert Tenant.objects.count() == tenants_before
    assert _schema_count() == schemas_before


def _schema_count() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM information_schema.schemata")
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_signup_refuses_a_taken_subdomain(public_client, tenant_a):
    _refused(public_client, {**VALID, "slug": tenant_a.slug}, "slug", "already taken")


@pytest.mark.django_db
@pytest.mark.parametrize("slug", ["a", "-acme", "acme_co", "ACME!", "9lives", "x" * 41])
def test_signup_refuses_an_invalid_subdomain(public_client, slug):
    _refused(public_client, {**VALID, "slug": slug}, "slug", "")


@pytest.mark.django_db
def test_signup_refuses_a_reserved_subdomain(public_client):
    _refused(public_client, {**VALID, "slug": "admin"}, "slug", "reserved")


@pytest.mark.django_db
@pytest.mark.parametrize("password", ["short", "password1234", "123456789012345"])
def test_signup_refuses_a_weak_password(public_client, password):
    _refused(public_client, {**VALID, "password": password}, "password", "")


@pytest.mark.django_db
def test_signup_refuses_without_the_age_confirmation(public_client):
    data = {k: v for k, v in VALID.items() if k != "is_adult"}
    _refused(public_client, data, "is_adult", "18 or older")


@pytest.mark.django_db
def test_signup_refuses_without_accepting_the_policy(public_client):
    data = {k: v for k, v in VALID.items() if k != "accepts_policy"}
    _refused(public_client, data, "accepts_policy", "privacy policy")


@pytest.mark.django_db
def test_signup_refuses_a_missing_email(public_client):
    _refused(public_client, {**VALID, "email": ""}, "email", "required")
