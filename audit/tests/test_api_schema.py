"""Schemathesis against /api/v1/: no server error and no response outside the schema.

Runs in-process against the WSGI app with a tenant Host header and a write token, bounded by
a small `max_examples` per operation (the suite stays fast and deterministic enough).
"""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from audit.insight import api_token_create
from audit.tests.insight_factory import record, workspace, write
from conftest import in_tenant, owner_of
from tenants.services import tenant_host


@pytest.fixture
def api_headers(tenant_a):
    _, _, key = workspace(tenant_a)
    write(tenant_a, [record(key), record(key, model="claude-haiku-4-5", status_code=429)])
    with in_tenant(tenant_a):
        _, token = api_token_create(None, user=owner_of(tenant_a), scope="write")
    return {"Host": tenant_host(tenant_a), "Authorization": f"Bearer {token}"}


@pytest.fixture
def api_schema(api_headers):
    # Keep the test transaction's connection open across in-process requests.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi(
            "/api/v1/schema/?format=json", get_wsgi_application(), headers=api_headers
        )
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.mark.django_db
def test_api_answers_every_generated_request_within_its_schema(api_schema, api_headers):
    checked = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @hypothesis_settings(
            max_examples=8,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )
        @given(case=operation.as_strategy())
        def call(case):
            case.call_and_validate(
                headers=api_headers, checks=[not_a_server_error, response_schema_conformance]
            )

        call()
        checked += 1
    assert checked >= 15
