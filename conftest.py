"""Shared fixtures: two tenants (A and B) made once per session, users of each role, clients."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from django.core.cache import cache
from django.db import close_old_connections, connection
from django.test import Client
from django_tenants.utils import schema_context

from accounts.models import Role, User
from tenants.models import Tenant
from tenants.services import tenant_create, tenant_host

PASSWORD = "a-long-test-password-42"  # noqa: S105


@pytest.fixture(scope="session", autouse=True)
def _fresh_redis() -> None:
    cache.clear()


@pytest.fixture(autouse=True)
def _public_schema_after_each_test() -> Iterator[None]:
    """A request to a tenant host leaves the connection in that schema; start each test clean."""
    yield
    connection.set_schema_to_public()  # type: ignore[attr-defined]


@pytest.fixture(scope="session", autouse=True)
def _end_stray_connections(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Servers under test keep connections in worker threads; end them so the test DB can go."""
    yield
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(scope="session")
def tenants_ab(django_db_setup: None, django_db_blocker: pytest.FixtureRequest) -> dict:
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        return {
            key: Tenant.objects.filter(slug=slug).first()
            or tenant_create(
                name=f"Tenant {key.upper()}",
                slug=slug,
                owner_email=f"owner@{slug}.example.com",
                owner_password=PASSWORD,
                owner_email_verified=True,
            )
            for key, slug in (("a", "tenant-a"), ("b", "tenant-b"))
        }


@pytest.fixture
def tenant_a(tenants_ab: dict, db: None) -> Tenant:
    tenant: Tenant = Tenant.objects.get(pk=tenants_ab["a"].pk)
    return tenant


@pytest.fixture
def tenant_b(tenants_ab: dict, db: None) -> Tenant:
    tenant: Tenant = Tenant.objects.get(pk=tenants_ab["b"].pk)
    return tenant


@contextmanager
def in_tenant(tenant: Tenant) -> Iterator[None]:
    with schema_context(tenant.schema_name):
        yield


def run_committed(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run `fn` on a database connection of its own, so its writes (and on-commit hooks) are
    committed where servers under test and workers in other threads or processes see them."""

    def run() -> Any:
        close_old_connections()
        try:
            return fn(*args, **kwargs)
        finally:
            close_old_connections()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


def make_user(tenant: Tenant, role: str = Role.MEMBER, email: str | None = None) -> User:
    """A verified user of `tenant` with the given role."""
    with in_tenant(tenant):
        email = email or f"{role}-{User.objects.count()}@{tenant.slug}.example.com"
        user = User.objects.create_user(email, PASSWORD, role=role, name=role.title())
        EmailAddress.objects.create(user=user, email=email, primary=True, verified=True)
    return user


def owner_of(tenant: Tenant) -> User:
    with in_tenant(tenant):
        return User.objects.get(role=Role.OWNER, email=f"owner@{tenant.slug}.example.com")


def tenant_client(tenant: Tenant, user: User | None = None) -> Client:
    """A test client on the tenant's own host, signed in as `user` when given."""
    client = Client(HTTP_HOST=tenant_host(tenant))
    if user is not None:
        with in_tenant(tenant):
            client.force_login(user)
    return client


@pytest.fixture
def public_client() -> Client:
    return Client(HTTP_HOST="localhost")
