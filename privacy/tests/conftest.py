import itertools
from collections.abc import Iterator

import pytest
from django.db import connection

from conftest import PASSWORD
from tenants.models import Tenant
from tenants.services import tenant_create
from tokenscope.celery import app as celery_app

_numbers = itertools.count(1)


def new_tenant(plan: str = "free", **kwargs: object) -> Tenant:
    slug = f"priv-{next(_numbers)}"
    connection.set_schema_to_public()  # a previous request may have left a tenant schema set
    return tenant_create(
        name=f"Privacy Co {slug}",
        slug=slug,
        owner_name="Olive Owner",
        owner_email=f"owner@{slug}.example.com",
        owner_password=PASSWORD,
        owner_email_verified=True,
        plan_slug=plan,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
def fresh_tenant(db: None) -> Tenant:
    """A tenant of its own, for tests that delete or change it."""
    return new_tenant()


@pytest.fixture
def eager_celery() -> Iterator[None]:
    """Run Celery tasks in-process (the broker is a process boundary)."""
    old = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = old


@pytest.fixture(autouse=True)
def _public_schema_after() -> Iterator[None]:
    """Requests to tenant hosts leave their schema set; later fixtures expect public."""
    yield
    connection.set_schema_to_public()
