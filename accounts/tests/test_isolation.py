import pytest
from django_tenants.utils import schema_context

from accounts.models import User
from conftest import PASSWORD, in_tenant, make_user, owner_of, tenant_client


@pytest.mark.django_db
def test_a_user_of_tenant_a_cannot_sign_in_on_tenant_b(tenant_a, tenant_b):
    make_user(tenant_a, "member", email="only-in-a@example.com")
    client = tenant_client(tenant_b)

    response = client.post(
        "/accounts/login/", {"login": "only-in-a@example.com", "password": PASSWORD}
    )

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    assert client.get("/").status_code == 302


@pytest.mark.django_db
def test_a_user_of_tenant_a_signs_in_on_tenant_a(tenant_a):
    make_user(tenant_a, "member", email="member-a@example.com")
    client = tenant_client(tenant_a)

    response = client.post(
        "/accounts/login/", {"login": "member-a@example.com", "password": PASSWORD}
    )

    assert response.status_code == 302
    assert client.get("/").status_code == 200


@pytest.mark.django_db
def test_the_session_of_tenant_a_is_useless_on_tenant_b(tenant_a, tenant_b):
    client_a = tenant_client(tenant_a, owner_of(tenant_a))
    session_cookie = client_a.cookies["sessionid"].value
    client_b = tenant_client(tenant_b)
    client_b.cookies["sessionid"] = session_cookie

    response = client_b.get("/team/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_tenant_a_data_is_never_visible_from_tenant_b(tenant_a, tenant_b):
    make_user(tenant_a, "viewer", email="secret-colleague@a.example.com")
    client_b = tenant_client(tenant_b, owner_of(tenant_b))

    page = client_b.get("/team/").content.decode()

    assert "secret-colleague@a.example.com" not in page
    assert owner_of(tenant_b).email in page
    with schema_context(tenant_b.schema_name):
        assert not User.objects.filter(email="secret-colleague@a.example.com").exists()


@pytest.mark.django_db
def test_acting_on_a_member_of_another_tenant_by_id_gives_404(tenant_a, tenant_b):
    with in_tenant(tenant_b):
        highest_in_b = User.objects.order_by("-pk").values_list("pk", flat=True).first()
    victim = make_user(tenant_a, "member", email="victim@a.example.com")
    while victim.pk <= highest_in_b:
        victim = make_user(tenant_a, "member")
    client_b = tenant_client(tenant_b, owner_of(tenant_b))

    for action in ("remove", "role"):
        response = client_b.post(f"/team/{victim.pk}/{action}/", {"role": "viewer"})
        assert response.status_code == 404
    with in_tenant(tenant_a):
        victim.refresh_from_db()
        assert victim.is_active
        assert victim.role == "member"


@pytest.mark.django_db
def test_an_unknown_host_gets_404(client):
    assert client.get("/", HTTP_HOST="nobody.localhost").status_code == 404
