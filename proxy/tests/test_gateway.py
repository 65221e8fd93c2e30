import hashlib
import json
import os
import sys
import time
from decimal import Decimal

import anthropic
import httpx
import pytest

from audit.models import UsageRecord
from conftest import run_committed
from proxy.fake_upstream.server import running_fake_upstream
from proxy.tests.gateway_support import (
    ANTHROPIC_KEY_A,
    raw_exchange,
    record_count,
    wait_record,
)

pytestmark = pytest.mark.django_db

MODEL = "claude-sonnet-4-6"
USAGE = {
    "input_tokens": 1000,
    "cache_creation_input_tokens": 400,
    "cache_creation": {"ephemeral_5m_input_tokens": 300, "ephemeral_1h_input_tokens": 100},
    "cache_read_input_tokens": 2000,
}
# Sonnet 4.6: input $3, 5m write $3.75, 1h write $6, read $0.30, output $15 per million tokens.
EXPECTED_COST = (
    Decimal(1000) * Decimal("3")
    + Decimal(300) * Decimal("3.75")
    + Decimal(100) * Decimal("6")
    + Decimal(2000) * Decimal("0.30")
    + Decimal(500) * Decimal("15")
) / Decimal(1_000_000)


VERSION = {"anthropic-version": "2023-06-01"}


def directive(**options):
    return "[[fake:" + json.dumps(options) + "]]"


def sdk(url, key, **options):
    return anthropic.Anthropic(base_url=url, api_key=key, max_retries=0, **options)


def ask(text="Summarise this ticket, please.", **options):
    return [{"role": "user", "content": text + (directive(**options) if options else "")}]


def test_messages_create_records_exact_usage_and_cost(proxy_url, workspaces):
    ws = workspaces["a"]
    client = sdk(proxy_url, ws.key)

    raw = client.messages.with_raw_response.create(
        model=MODEL, max_tokens=600, messages=ask(usage=USAGE, output_tokens=500)
    )
    message = raw.parse()

    assert message.usage.output_tokens == 500
    record = wait_record(ws.tenant, raw.headers["x-tokenscope-request-id"])
    assert record.kind == UsageRecord.Kind.MESSAGES
    assert (record.model, record.status_code, record.is_stream) == (MODEL, 200, False)
    assert record.input_tokens == 1000
    assert record.output_tokens == 500
    assert record.cache_creation_input_tokens == 400
    assert record.cache_creation_5m_input_tokens == 300
    assert record.cache_creation_1h_input_tokens == 100
    assert record.cache_read_input_tokens == 2000
    assert record.cost_usd == EXPECTED_COST == Decimal("0.012825")
    assert record.cost_breakdown["cache_write_1h_usd"] == "0.000600000000"
    assert record.is_priced
    assert record.project_id == ws.project_id
    assert record.cost_center_id == ws.cost_center_id
    assert record.proxy_key_id == ws.key_id
    assert record.upstream_request_id == raw.headers["request-id"]
    assert record.stop_reason == message.stop_reason
    assert record.usage_raw["cache_read_input_tokens"] == 2000
    assert float(raw.headers["x-tokenscope-overhead-ms"]) >= 0
    assert record.latency_ms >= record.overhead_ms >= 0


async def test_the_async_sdk_works_through_the_proxy(proxy_url, workspaces):
    ws = workspaces["a"]
    client = anthropic.AsyncAnthropic(base_url=proxy_url, api_key=ws.key, max_retries=0)

    message = await client.messages.create(model=MODEL, max_tokens=100, messages=ask())

    assert message.content[0].type == "text"
    await client.close()


def test_a_stream_relays_events_and_records_the_final_cumulative_usage(proxy_url, workspaces):
    ws = workspaces["a"]
    client = sdk(proxy_url, ws.key)

    with client.messages.stream(
        model=MODEL, max_tokens=600, messages=ask(usage=USAGE, output_tokens=500, text_chunks=5)
    ) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
        record_id = stream.response.headers["x-tokenscope-request-id"]

    assert len(texts) == 5
    assert final.usage.output_tokens == 500
    record = wait_record(ws.tenant, record_id)
    assert record.is_stream
    assert record.output_tokens == 500
    assert record.cache_read_input_tokens == 2000
    assert record.cost_usd == EXPECTED_COST
    assert record.error_type == ""
    assert record.ttfb_ms is not None


def test_both_api_versions_and_every_beta_header_are_forwarded(
    proxy_url, workspaces, fake_upstream
):
    ws = workspaces["a"]
    with httpx.Client(base_url=proxy_url) as client:
        client.delete(fake_upstream.base_url + "/_fake/requests")
        for version in ("2023-06-01", "2026-10-21"):
            response = client.post(
                "/v1/messages?beta=true",
                headers={
                    "x-api-key": ws.key,
                    "anthropic-version": version,
                    "anthropic-beta": "context-1m-2025-08-07,fast-mode-2026-02-01",
                    "x-tokenscope-project": "spoofed",
                    "cookie": "session=nope",
                },
                json={"model": MODEL, "max_tokens": 10, "messages": ask()},
            )
            assert response.status_code == 200
        recorded = httpx.get(fake_upstream.base_url + "/_fake/requests").json()
    sent = [r for r in recorded if r["path"] == "/v1/messages"][-2:]
    assert [_header(r, "anthropic-version") for r in sent] == ["2023-06-01", "2026-10-21"]
    for request in sent:
        assert _header(request, "anthropic-beta") == "context-1m-2025-08-07,fast-mode-2026-02-01"
        assert _header(request, "x-api-key") == ANTHROPIC_KEY_A
        assert _header(request, "x-tokenscope-project") is None
        assert _header(request, "cookie") is None
        assert ws.key not in json.dumps(request)
        assert "beta=true" in request["query"]


def _header(recorded, name):
    headers = recorded["headers"]
    if isinstance(headers, dict):
        return headers.get(name)
    return next((value for key, value in headers if key.lower() == name), None)


def test_a_bearer_key_is_accepted_and_forwarded_as_bearer(proxy_url, workspaces, fake_upstream):
    ws = workspaces["a"]
    response = httpx.post(
        proxy_url + "/v1/messages",
        headers={"authorization": f"Bearer {ws.key}", "anthropic-version": "2026-10-21"},
        json={"model": MODEL, "max_tokens": 10, "messages": ask()},
    )

    assert response.status_code == 200
    last = httpx.get(fake_upstream.base_url + "/_fake/requests").json()[-1]
    assert _header(last, "authorization") == f"Bearer {ANTHROPIC_KEY_A}"


def test_count_tokens_and_models_go_through(proxy_url, workspaces):
    ws = workspaces["a"]
    client = sdk(proxy_url, ws.key)

    count = client.messages.count_tokens(model=MODEL, messages=ask("x" * 400))
    models = client.models.list()
    one = client.models.retrieve(models.data[0].id)

    assert count.input_tokens > 0
    assert one.id == models.data[0].id


def test_models_are_filtered_by_the_keys_allowed_models(proxy_url, workspaces):
    client = sdk(proxy_url, workspaces["a_haiku_only"])

    ids = [model.id for model in client.models.list().data]

    assert ids
    assert all(i == "claude-haiku-4-5" or i.startswith("claude-haiku-4-5-") for i in ids)
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve(MODEL)
    with pytest.raises(anthropic.PermissionDeniedError):
        client.messages.create(model=MODEL, max_tokens=5, messages=ask())


@pytest.mark.parametrize("which", ["unknown", "a_revoked", "a_expired", "missing"])
def test_bad_keys_get_401(proxy_url, workspaces, which):
    key = {"unknown": "tsk_nobody_" + "x" * 40, "missing": ""}.get(which, workspaces.get(which))
    headers = {"anthropic-version": "2023-06-01"}
    if key:
        headers["x-api-key"] = key

    response = httpx.post(
        proxy_url + "/v1/messages", headers=headers, json={"model": MODEL, "messages": ask()}
    )

    assert response.status_code == 401
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "authentication_error"
    assert body["request_id"] == response.headers["request-id"]
    assert response.headers["x-should-retry"] == "false"


def test_tenant_a_key_on_tenant_b_host_is_refused(proxy_url, workspaces):
    before_b = record_count(workspaces["b"].tenant)
    response = httpx.post(
        proxy_url + "/v1/messages",
        headers={**VERSION, "x-api-key": workspaces["a"].key, "host": "gw-b.localhost"},
        json={"model": MODEL, "max_tokens": 5, "messages": ask()},
    )
    on_own_host = httpx.post(
        proxy_url + "/v1/messages",
        headers={**VERSION, "x-api-key": workspaces["a"].key, "host": "gw-a.localhost"},
        json={"model": MODEL, "max_tokens": 5, "messages": ask()},
    )

    assert response.status_code == 401
    assert on_own_host.status_code == 200
    wait_record(workspaces["a"].tenant, on_own_host.headers["x-tokenscope-request-id"])
    assert record_count(workspaces["b"].tenant) == before_b


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"{not json", "not valid JSON"), (b'{"max_tokens": 5}', "model"), (b"[1, 2]", "JSON object")],
)
def test_bad_bodies_get_400_and_are_not_forwarded(
    proxy_url, workspaces, fake_upstream, body, message
):
    ws = workspaces["a"]
    before = len(httpx.get(fake_upstream.base_url + "/_fake/requests").json())

    response = httpx.post(
        proxy_url + "/v1/messages",
        headers={**VERSION, "x-api-key": ws.key, "content-type": "application/json"},
        content=body,
    )

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert message in response.json()["error"]["message"]
    assert len(httpx.get(fake_upstream.base_url + "/_fake/requests").json()) == before
    record = wait_record(ws.tenant, response.headers["x-tokenscope-request-id"])
    assert (record.status_code, record.error_type) == (400, "invalid_request_error")


def test_an_oversize_body_gets_413(proxy_url, workspaces, settings):
    settings.PROXY_MAX_BODY_BYTES = 1000
    response = httpx.post(
        proxy_url + "/v1/messages",
        headers={**VERSION, "x-api-key": workspaces["a"].key},
        json={"model": MODEL, "max_tokens": 5, "messages": ask("y" * 2000)},
    )

    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"


@pytest.mark.parametrize(
    "path", ["/v1/complete", "/v1/files", "/v1/organizations/me", "/v1/messages/x"]
)
def test_other_v1_paths_get_404_and_are_not_forwarded(proxy_url, workspaces, fake_upstream, path):
    before = len(httpx.get(fake_upstream.base_url + "/_fake/requests").json())

    response = httpx.post(
        proxy_url + path, headers={**VERSION, "x-api-key": workspaces["a"].key}, json={}
    )

    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"
    assert len(httpx.get(fake_upstream.base_url + "/_fake/requests").json()) == before


@pytest.mark.parametrize(
    ("fault", "status", "error_type"),
    [("500", 500, "api_error"), ("529", 529, "overloaded_error"), ("429", 429, "rate_limit_error")],
)
def test_upstream_errors_are_relayed_as_they_are(proxy_url, workspaces, fault, status, error_type):
    ws = workspaces["a"]
    response = httpx.post(
        proxy_url + "/v1/messages",
        headers={**VERSION, "x-api-key": ws.key},
        json={"model": MODEL, "max_tokens": 5, "messages": ask(fault=fault, retry_after=7)},
    )

    assert response.status_code == status
    assert response.json()["error"]["type"] == error_type
    assert response.headers["request-id"].startswith("req_")
    if fault == "429":
        assert response.headers["retry-after"] == "7"
    record = wait_record(ws.tenant, response.headers["x-tokenscope-request-id"])
    assert (record.status_code, record.error_type, record.cost_usd) == (status, error_type, 0)


def test_an_upstream_drop_mid_stream_ends_with_an_error_event(proxy_url, workspaces):
    ws = workspaces["a"]
    client = sdk(proxy_url, ws.key)

    with client.messages.stream(
        model=MODEL, max_tokens=50, messages=ask(fault="drop", text_chunks=8)
    ) as stream:
        record_id = stream.response.headers["x-tokenscope-request-id"]
        with pytest.raises(anthropic.APIStatusError) as raised:
            list(stream.text_stream)

    assert "lost" in str(raised.value)
    record = wait_record(ws.tenant, record_id)
    assert record.error_type == "upstream_dropped"
    assert record.input_tokens > 0  # message_start's usage arrived before the drop


def test_an_in_band_error_event_is_relayed_and_recorded(proxy_url, workspaces):
    ws = workspaces["a"]
    with httpx.stream(
        "POST",
        proxy_url + "/v1/messages",
        headers={**VERSION, "x-api-key": ws.key},
        json={
            "model": MODEL,
            "max_tokens": 50,
            "stream": True,
            "messages": ask(fault="error_event"),
        },
    ) as response:
        body = response.read()
        record_id = response.headers["x-tokenscope-request-id"]

    assert b"event: error" in body
    assert b"overloaded_error" in body
    assert wait_record(ws.tenant, record_id).error_type == "overloaded_error"


def test_a_client_disconnect_mid_stream_cancels_upstream_and_is_recorded(
    proxy_url, workspaces, fake_upstream
):
    ws = workspaces["a"]
    stats = fake_upstream.base_url + "/_fake/stats"
    cut_before = httpx.get(stats).json()["streams_disconnected"]
    with httpx.stream(
        "POST",
        proxy_url + "/v1/messages",
        headers={**VERSION, "x-api-key": ws.key},
        json={
            "model": MODEL,
            "max_tokens": 50,
            "stream": True,
            "messages": ask(text_chunks=200, chunk_delay_ms=20),
        },
    ) as response:
        record_id = response.headers["x-tokenscope-request-id"]
        for chunk in response.iter_raw():
            if b"content_block_delta" in chunk:
                break

    record = wait_record(ws.tenant, record_id)
    assert record.client_disconnected
    assert record.input_tokens > 0
    assert record.status_code == 200
    assert httpx.get(stats).json()["streams_disconnected"] == cut_before + 1


def test_privacy_mode_keeps_only_the_documented_hash(proxy_url, workspaces):
    from django.db import connection

    ws = workspaces["p"]
    messages = ask(
        "Patient Jane Roe (jane.roe@roe-family.net), born 1980-02-03, asks why her invoice "
        "for the billing product doubled (ünïcode)."
    )
    system = "You are a support agent."
    response = sdk(proxy_url, ws.key).messages.with_raw_response.create(
        model=MODEL, max_tokens=20, system=system, messages=messages
    )

    record = wait_record(ws.tenant, response.headers["x-tokenscope-request-id"])
    canonical = json.dumps(
        {"messages": messages, "system": system},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode("utf-8")
    assert record.prompt_text is None
    assert record.prompt_sha256 == hashlib.sha256(canonical).hexdigest()
    # Classified in memory all the same.
    assert record.category
    assert record.relevance_score is not None
    assert record.sensitivity == "confidential"
    assert "email_address" in record.detectors
    assert_nowhere_in_redis("Jane Roe")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = %s AND data_type IN ('text', 'character varying', 'jsonb')",
            [ws.tenant.schema_name],
        )
        for table, column in cursor.fetchall():
            cursor.execute(
                f'SELECT count(*) FROM "{ws.tenant.schema_name}"."{table}" '  # noqa: S608
                f'WHERE "{column}"::text LIKE %s',
                ["%Jane Roe%"],
            )
            assert cursor.fetchone()[0] == 0, (table, column)


def assert_nowhere_in_redis(marker):
    """Scan every key and value of the cache/broker Redis database (Celery messages included)."""
    import redis as redis_lib
    from django.conf import settings

    client = redis_lib.Redis.from_url(settings.REDIS_URL)
    needle = marker.encode()
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == b"string":
            values = [client.get(key) or b""]
        elif kind == b"list":
            values = client.lrange(key, 0, -1)
        elif kind == b"hash":
            values = list(client.hgetall(key).values())
        elif kind == b"set":
            values = list(client.smembers(key))
        elif kind == b"zset":
            values = client.zrange(key, 0, -1)
        else:
            values = []
        assert needle not in key
        assert all(needle not in value for value in values), key


def test_without_privacy_mode_the_prompt_text_is_kept(proxy_url, workspaces):
    ws = workspaces["a"]
    response = sdk(proxy_url, ws.key).messages.with_raw_response.create(
        model=MODEL, max_tokens=20, system="Be brief.", messages=ask("What is our refund policy?")
    )

    record = wait_record(ws.tenant, response.headers["x-tokenscope-request-id"])
    assert "What is our refund policy?" in record.prompt_text
    assert "Be brief." in record.prompt_text
    assert len(record.prompt_sha256) == 64


def test_a_key_vault_outage_with_a_cold_cache_gives_503(proxy_url, workspaces):
    from proxy.custody import kek_provider, kek_provider_set, plaintext_cache

    class Unreachable:
        def __getattr__(self, name):
            raise AttributeError(name)

        def wrap(self, dek):
            raise self._down()

        def unwrap(self, wrapped, kek_id, alg):
            raise self._down()

        def _down(self):
            from proxy.custody import KeyCustodyUnavailable

            return KeyCustodyUnavailable("Key Vault unreachable")

    working = kek_provider()
    plaintext_cache.clear()
    kek_provider_set(Unreachable())
    try:
        response = httpx.post(
            proxy_url + "/v1/messages",
            headers={**VERSION, "x-api-key": workspaces["a_cold"]},
            json={"model": MODEL, "max_tokens": 5, "messages": ask()},
        )
    finally:
        kek_provider_set(working)

    assert response.status_code == 503
    assert response.json()["error"]["type"] == "api_error"
    assert response.headers["x-should-retry"] == "true"
    assert ANTHROPIC_KEY_A not in response.text


def test_every_call_leaves_exactly_one_record(proxy_url, workspaces):
    ws = workspaces["a"]
    client = sdk(proxy_url, ws.key)
    ids = []
    for index in range(6):
        if index % 2:
            with client.messages.stream(model=MODEL, max_tokens=20, messages=ask()) as stream:
                stream.get_final_message()
                ids.append(stream.response.headers["x-tokenscope-request-id"])
        else:
            raw = client.messages.with_raw_response.create(
                model=MODEL, max_tokens=20, messages=ask()
            )
            ids.append(raw.headers["x-tokenscope-request-id"])

    for record_id in ids:
        wait_record(ws.tenant, record_id)
    from django_tenants.utils import schema_context

    with schema_context(ws.tenant.schema_name):
        assert UsageRecord.objects.filter(pk__in=ids).count() == len(set(ids)) == 6


def test_a_batch_goes_from_create_to_results_and_each_result_is_metered(proxy_url, workspaces):
    import time

    from django_tenants.utils import schema_context

    from proxy.batch_models import ProxyBatch
    from proxy.batches import batches_meter_pending

    ws = workspaces["a"]
    client = sdk(proxy_url, ws.key)
    requests = [
        {
            "custom_id": f"ticket-{n}",
            "params": {
                "model": MODEL,
                "max_tokens": 300,
                "messages": ask(usage={"input_tokens": 1000}, output_tokens=200),
            },
        }
        for n in range(3)
    ]

    batch = client.messages.batches.create(requests=requests)
    assert batch.results_url is None or batch.results_url.startswith(proxy_url)
    for _ in range(100):
        batch = client.messages.batches.retrieve(batch.id)
        if batch.processing_status == "ended":
            break
        time.sleep(0.1)
    assert batch.results_url == f"{proxy_url}/v1/messages/batches/{batch.id}/results"
    results = list(client.messages.batches.results(batch.id))
    assert sorted(r.custom_id for r in results) == ["ticket-0", "ticket-1", "ticket-2"]
    listed = client.messages.batches.list()
    assert all(b.results_url is None or b.results_url.startswith(proxy_url) for b in listed.data)

    with schema_context(ws.tenant.schema_name):
        assert ProxyBatch.objects.filter(pk=batch.id, proxy_key_id=ws.key_id).exists()
        assert batches_meter_pending(tenant=ws.tenant) == 3
        assert batches_meter_pending(tenant=ws.tenant) == 0  # metered once
        records = UsageRecord.objects.filter(
            batch_id=batch.id, kind=UsageRecord.Kind.BATCH_RESULT
        ).order_by("custom_id")
        assert [r.custom_id for r in records] == ["ticket-0", "ticket-1", "ticket-2"]
        for record in records:
            assert record.kind == UsageRecord.Kind.BATCH_RESULT
            assert record.proxy_key_id == ws.key_id
            assert record.project_id == ws.project_id
            # Batch prices: half of $3 input and $15 output per million tokens.
            assert record.cost_usd == (
                Decimal(1000) * Decimal("1.5") + Decimal(200) * Decimal("7.5")
            ) / Decimal(1_000_000)


def test_another_tenants_batch_is_not_found(proxy_url, workspaces):
    owner = sdk(proxy_url, workspaces["a"].key)
    batch = owner.messages.batches.create(
        requests=[
            {"custom_id": "x", "params": {"model": MODEL, "max_tokens": 5, "messages": ask()}}
        ]
    )
    other = sdk(proxy_url, workspaces["b"].key)

    with pytest.raises(anthropic.NotFoundError):
        other.messages.batches.retrieve(batch.id)
    with pytest.raises(anthropic.NotFoundError):
        other.messages.batches.cancel(batch.id)
    assert batch.id in [b.id for b in owner.messages.batches.list(limit=1000).data]
    assert batch.id not in [b.id for b in other.messages.batches.list(limit=1000).data]


def test_an_upstream_timeout_gives_504_and_an_unreachable_upstream_502(workspaces, settings):
    from proxy.gateway import Gateway
    from tokenscope.lib.asgi_server import serve_in_thread

    slow = {"model": MODEL, "max_tokens": 5, "messages": ask(fault="slow_headers")}
    with running_fake_upstream(slow_headers_seconds=5) as fake:
        settings.ANTHROPIC_UPSTREAM_URL = fake.base_url
        settings.UPSTREAM_READ_TIMEOUT = 0.3
        with serve_in_thread(Gateway(), lifespan="on") as url:
            timed_out = httpx.post(
                url + "/v1/messages",
                headers={**VERSION, "x-api-key": workspaces["a"].key},
                json=slow,
            )
    settings.ANTHROPIC_UPSTREAM_URL = "http://127.0.0.1:9"  # nothing listens on the discard port
    with serve_in_thread(Gateway(), lifespan="on") as url:
        unreachable = httpx.post(
            url + "/v1/messages",
            headers={**VERSION, "x-api-key": workspaces["a"].key},
            json={"model": MODEL, "max_tokens": 5, "messages": ask()},
        )

    assert timed_out.status_code == 504
    assert timed_out.json()["error"]["type"] == "timeout_error"
    assert timed_out.headers["x-should-retry"] == "true"
    assert unreachable.status_code == 502
    assert unreachable.json()["error"]["type"] == "api_error"
    assert unreachable.headers["x-should-retry"] == "true"
    for response in (timed_out, unreachable):
        record = wait_record(workspaces["a"].tenant, response.headers["x-tokenscope-request-id"])
        assert record.status_code == response.status_code


def test_records_the_database_refuses_are_spooled_and_written_once_it_is_back(
    proxy_url, workspaces
):
    import psycopg
    from django.db import connection
    from django_tenants.utils import schema_context

    from proxy.gateway.records import spool_dir, spool_drain

    ws = workspaces["s"]
    schema = ws.tenant.schema_name
    params = connection.get_connection_params()
    client = sdk(proxy_url, ws.key)
    # A separate connection, outside the test's transaction, makes every insert fail for a while
    # the way an unavailable server does (SQLSTATE 57P03, cannot_connect_now).
    with psycopg.connect(**params, autocommit=True) as admin:
        admin.execute("SET lock_timeout = '5s'")
        admin.execute(
            f'CREATE FUNCTION "{schema}".refuse() RETURNS trigger LANGUAGE plpgsql AS '
            "$$ BEGIN RAISE EXCEPTION 'database unavailable' USING ERRCODE = '57P03'; END $$"
        )
        admin.execute(
            f'CREATE TRIGGER refuse BEFORE INSERT ON "{schema}".audit_usagerecord '
            f'FOR EACH STATEMENT EXECUTE FUNCTION "{schema}".refuse()'
        )
        try:
            ids = [
                client.messages.with_raw_response.create(
                    model=MODEL, max_tokens=5, messages=ask()
                ).headers["x-tokenscope-request-id"]
                for _ in range(3)
            ]
            deadline = time.monotonic() + 10
            while not list(spool_dir().glob(f"{schema}.*")) and time.monotonic() < deadline:
                time.sleep(0.05)
            spooled = list(spool_dir().glob(f"{schema}.*"))
        finally:
            admin.execute(f'DROP TRIGGER refuse ON "{schema}".audit_usagerecord')
            admin.execute(f'DROP FUNCTION "{schema}".refuse()')

    assert spooled
    # On a connection that commits, as the writer process and Celery drain: inside the test's
    # transaction the drain's rollup upserts would hold row locks until the test ends, and a
    # batch the writer process still had in flight would wait for them.
    run_committed(spool_drain)
    assert run_committed(spool_drain) == 0
    for record_id in ids:  # spooled ones from the drain, any later one from the writer
        wait_record(ws.tenant, record_id)
    with schema_context(schema):
        assert UsageRecord.objects.filter(pk__in=ids).count() == 3
        # The spooled records reached the dashboard rollups too.
        from django.db.models import Sum

        from audit.models import UsageRollup

        assert UsageRollup.objects.aggregate(n=Sum("requests"))["n"] == UsageRecord.objects.count()


def test_an_unknown_model_is_kept_unpriced_and_operators_hear_once(
    proxy_url, workspaces, operator, mailoutbox
):
    from django_tenants.utils import schema_context

    from tokenscope.lib.redis import get_redis

    get_redis().delete("ts:unpriced-model:claude-next-9")
    ws = workspaces["a"]
    client = sdk(proxy_url, ws.key)

    ids = [
        client.messages.with_raw_response.create(
            model="claude-next-9", max_tokens=5, messages=ask()
        ).headers["x-tokenscope-request-id"]
        for _ in range(2)
    ]

    records = [wait_record(ws.tenant, record_id) for record_id in ids]
    assert all(not r.is_priced and r.cost_usd == 0 and r.output_tokens > 0 for r in records)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any("claude-next-9" in m.subject for m in mailoutbox):
        time.sleep(0.05)
    operator_mails = [
        m for m in mailoutbox if m.subject == "[TokenScope] Unpriced model: claude-next-9"
    ]
    assert len(operator_mails) == 1
    assert operator_mails[0].to == [operator.email]
    with schema_context(ws.tenant.schema_name):
        from proxy.budget_models import Notification

        assert Notification.objects.filter(kind="unpriced_model").exists()


def test_the_client_ip_comes_from_x_forwarded_for_only_behind_a_trusted_proxy(
    proxy_url, workspaces, settings
):
    ws = workspaces["a"]

    def call():
        response = httpx.post(
            proxy_url + "/v1/messages",
            headers={**VERSION, "x-api-key": ws.key, "x-forwarded-for": "203.0.113.9, 10.0.0.2"},
            json={"model": MODEL, "max_tokens": 5, "messages": ask()},
        )
        return wait_record(ws.tenant, response.headers["x-tokenscope-request-id"])

    settings.TRUSTED_PROXIES = []
    untrusted = call()
    settings.TRUSTED_PROXIES = ["127.0.0.0/8", "10.0.0.0/8"]
    trusted = call()

    assert untrusted.ip_address == "127.0.0.1"
    assert trusted.ip_address == "203.0.113.9"


def test_a_revoked_key_is_refused_at_once_by_a_proxy_that_cached_it(proxy_url, workspaces):
    from django_tenants.utils import schema_context

    from proxy.models import ProxyKey
    from proxy.services import proxy_key_revoke
    from proxy.tests.gateway_support import extra_key

    ws = workspaces["s"]
    holder = {}
    run_committed(lambda: holder.update(key=extra_key(ws, name="to revoke")))
    client = sdk(proxy_url, holder["key"])
    client.messages.create(model=MODEL, max_tokens=5, messages=ask())  # now cached

    def revoke():
        with schema_context(ws.tenant.schema_name):
            row = ProxyKey.objects.get(name="to revoke")
            proxy_key_revoke(None, tenant=ws.tenant, proxy_key=row)

    run_committed(revoke)
    time.sleep(0.2)  # the change notice crosses Redis pub/sub

    with pytest.raises(anthropic.AuthenticationError):
        client.messages.create(model=MODEL, max_tokens=5, messages=ask())


def test_turning_privacy_mode_on_stops_prompt_storage_at_once(proxy_url, workspaces):
    from tenants.models import Tenant
    from tenants.services import tenant_settings_update

    ws = workspaces["s"]
    client = sdk(proxy_url, ws.key)
    before = client.messages.with_raw_response.create(
        model=MODEL, max_tokens=5, messages=ask("Remember the secret plan.")
    )
    owner = None

    def privacy_on():
        from django_tenants.utils import schema_context

        from accounts.models import User

        nonlocal owner
        tenant = Tenant.objects.get(pk=ws.tenant.pk)
        with schema_context(tenant.schema_name):
            owner = User.objects.get(role="owner")
            tenant_settings_update(tenant, actor=owner, privacy_mode=True)

    try:
        run_committed(privacy_on)
        time.sleep(0.2)
        after = client.messages.with_raw_response.create(
            model=MODEL, max_tokens=5, messages=ask("Remember the secret plan.")
        )
        assert wait_record(ws.tenant, before.headers["x-tokenscope-request-id"]).prompt_text
        assert wait_record(ws.tenant, after.headers["x-tokenscope-request-id"]).prompt_text is None
    finally:
        run_committed(lambda: Tenant.objects.filter(pk=ws.tenant.pk).update(privacy_mode=False))
        from proxy.services import config_changed_notify

        run_committed(lambda: config_changed_notify(Tenant.objects.get(pk=ws.tenant.pk)))


def test_a_spooled_record_the_database_refuses_is_set_aside_and_the_rest_written(workspaces):
    import os

    from django.utils import timezone
    from django_tenants.utils import schema_context

    from proxy.gateway.records import STALE_CLAIM_SECONDS, spool_dir, spool_drain, spool_records

    ws = workspaces["s"]
    schema = ws.tenant.schema_name

    def record(status_code):
        return UsageRecord(
            created_at=timezone.now(),
            kind="messages",
            endpoint="POST /v1/messages",
            model=MODEL,
            status_code=status_code,
            project_id=ws.project_id,
            cost_center_id=ws.cost_center_id,
            proxy_key_id=ws.key_id,
        )

    good, bad = record(200), record(70_000)  # beyond the column's range
    spool_records(schema, [good, bad])
    orphan = spool_records(schema, [record(201)])  # claimed by a drainer that died
    claimed = orphan.with_suffix(".999999.claimed")
    orphan.rename(claimed)
    old = time.time() - STALE_CLAIM_SECONDS - 10
    os.utime(claimed, (old, old))

    spool_drain()

    with schema_context(schema):
        assert UsageRecord.objects.filter(pk=good.pk).exists()
        assert not UsageRecord.objects.filter(pk=bad.pk).exists()
        assert UsageRecord.objects.filter(status_code=201, proxy_key_id=ws.key_id).exists()
    dead = (spool_dir() / "dead" / f"{schema}.jsonl").read_text()
    assert str(bad.pk) in dead
    assert not list(spool_dir().glob(f"{schema}.*"))


def test_headers_and_query_reach_upstream_byte_for_byte_and_nothing_is_added(
    proxy_url, workspaces, fake_upstream
):
    ws = workspaces["a"]
    httpx.delete(fake_upstream.base_url + "/_fake/requests")
    raw = (
        b"POST /v1/messages?beta=true&x=%2Fa%20b HTTP/1.1\r\n"
        b"host: " + proxy_url.split("//")[1].encode() + b"\r\n"
        b"x-api-key: " + ws.key.encode() + b"\r\n"
        b"anthropic-version: 2023-06-01\r\n"
        b"content-type: application/json\r\n"
        b"x-note: caf\xc3\xa9 \xe2\x82\xac\r\n"
        b"anthropic-beta: one\r\n"
        b"anthropic-beta: two\r\n"
        b"connection: close\r\n"
    )
    body = json.dumps({"model": MODEL, "max_tokens": 5, "messages": ask()}).encode()
    raw += b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    assert raw_exchange(proxy_url, raw)[9:12] == b"200"
    sent = httpx.get(fake_upstream.base_url + "/_fake/requests").json()[-1]

    assert sent["query"] == "beta=true&x=%2Fa%20b"
    names = [name.lower() for name, _ in sent["headers"]]
    # Nothing of the HTTP client's own: no user-agent, accept or other encodings.
    assert "user-agent" not in names
    assert "accept" not in names
    assert _header(sent, "accept-encoding") == "identity"
    latin1_of_utf8 = "café €".encode().decode("latin-1")
    assert _header(sent, "x-note") == latin1_of_utf8
    assert [v for k, v in sent["headers"] if k.lower() == "anthropic-beta"] == ["one", "two"]


def test_a_header_that_is_not_utf8_gets_400_and_is_not_forwarded(
    proxy_url, workspaces, fake_upstream
):
    ws = workspaces["a"]
    before = len(httpx.get(fake_upstream.base_url + "/_fake/requests").json())
    body = json.dumps({"model": MODEL, "max_tokens": 5, "messages": ask()}).encode()
    response = httpx.post(
        proxy_url + "/v1/messages",
        headers={"x-api-key": ws.key, **VERSION, "x-note": b"caf\xe9"},
        content=body,
    )

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "x-note" in response.json()["error"]["message"]
    assert len(httpx.get(fake_upstream.base_url + "/_fake/requests").json()) == before
    record = wait_record(ws.tenant, response.headers["x-tokenscope-request-id"])
    assert record.status_code == 400


def test_a_cookie_upstream_sets_never_travels_with_a_later_request(
    workspaces, fake_upstream, settings
):
    from proxy.gateway import Gateway
    from tokenscope.lib.asgi_server import serve_in_thread

    # By name, not IP: a cookie jar would keep a cookie for a host name.
    settings.ANTHROPIC_UPSTREAM_URL = fake_upstream.base_url.replace("127.0.0.1", "localhost")
    a, b = workspaces["a"], workspaces["b"]
    with serve_in_thread(Gateway(), lifespan="on") as url:
        sdk(url, a.key).messages.create(
            model=MODEL, max_tokens=5, messages=ask(set_cookie="__cf_bm=tenant-a; Path=/")
        )
        sdk(url, b.key).messages.create(model=MODEL, max_tokens=5, messages=ask())
        sdk(url, a.key).messages.create(model=MODEL, max_tokens=5, messages=ask())

    recorded = httpx.get(fake_upstream.base_url + "/_fake/requests").json()
    assert all(_header(r, "cookie") is None for r in recorded[-2:])


@pytest.mark.skipif(
    sys.platform != "linux" or len(os.sched_getaffinity(0)) < 2,
    reason="SCHED_IDLE and CPU affinity: Linux with two cores or more",
)
def test_the_writer_process_writes_on_one_core_and_only_when_nothing_else_wants_it(
    workspaces, fake_upstream, settings
):
    from proxy.gateway import Gateway
    from tokenscope.lib.asgi_server import serve_in_thread

    settings.ANTHROPIC_UPSTREAM_URL = fake_upstream.base_url
    ws = workspaces["a"]
    gateway = Gateway()
    with serve_in_thread(gateway, lifespan="on") as url:
        # The first record waits for the writer process to start (seconds): that batch is
        # behind and runs at normal priority; the next one is not.
        for _ in range(2):
            response = sdk(url, ws.key).messages.with_raw_response.create(
                model=MODEL, max_tokens=5, messages=ask()
            )
            wait_record(ws.tenant, response.headers["x-tokenscope-request-id"])
        (child,) = gateway.writer._pool._processes  # its main thread wrote the batch
        policy, cpus = os.sched_getscheduler(child), os.sched_getaffinity(child)
    assert policy == os.SCHED_IDLE
    assert len(cpus) == 1


def test_exchanges_reach_the_writer_process_without_the_anthropic_key():
    import pickle

    from proxy.gateway.exchange import Exchange
    from proxy.gateway.keys import ResolvedKey, TenantInfo
    from proxy.gateway.records import _portable
    from proxy.gateway.routes import route_match

    tenant = TenantInfo(1, "t1", "acme", "t_acme", "active", "eu", False, "UTC")
    secrets = ("sk-ant-api03-first-secret", "sk-ant-api03-second-secret")
    first, second = (
        ResolvedKey(n, tenant, 1, "", 1, None, (), None, None, None, None, secret)
        for n, secret in enumerate(secrets)
    )
    route = route_match("POST", "/v1/messages")
    assert route is not None
    batch = [
        Exchange(route, "POST /v1/messages", None, "ua", key=key, body_bytes=b"{}")
        for key in (first, first, second, None)
    ]
    for ex in batch:
        ex.reservation = object()

    portable = _portable(batch)

    assert [ex.record_id for ex in portable] == [ex.record_id for ex in batch[:3]]
    assert all(ex.key is not None and ex.key.anthropic_key is None for ex in portable)
    assert all(ex.reservation is None and ex.body_bytes == b"" for ex in portable)
    assert portable[0].key is portable[1].key  # one copy per key, pickled once
    assert portable[2].key is not None
    assert portable[2].key.id == second.id
    pickled = pickle.dumps(portable)
    assert not any(secret.encode() in pickled for secret in secrets)
    # The gateway's own exchanges keep what settling and forwarding need.
    assert [ex.key.anthropic_key for ex in batch[:3] if ex.key] == [*secrets[:1], *secrets]
    assert all(ex.reservation is not None and ex.body_bytes == b"{}" for ex in batch)


def test_records_are_written_once_when_the_writer_process_is_killed(
    workspaces, fake_upstream, settings
):
    import os
    import signal

    from django_tenants.utils import schema_context

    from proxy.gateway import Gateway
    from tokenscope.lib.asgi_server import serve_in_thread

    settings.ANTHROPIC_UPSTREAM_URL = fake_upstream.base_url
    ws = workspaces["a"]
    gateway = Gateway()

    def call(url):
        response = sdk(url, ws.key).messages.with_raw_response.create(
            model=MODEL, max_tokens=5, messages=ask()
        )
        return response.headers["x-tokenscope-request-id"]

    with serve_in_thread(gateway, lifespan="on") as url:
        wait_record(ws.tenant, call(url))
        pool = gateway.writer._pool
        (child,) = pool._processes  # the writer process, busy with nothing now
        os.kill(child, signal.SIGKILL)
        ids = [call(url) for _ in range(3)]
        records = [wait_record(ws.tenant, record_id) for record_id in ids]
        ids.append(call(url))  # and the next batch goes to a new writer process
        records.append(wait_record(ws.tenant, ids[-1]))
        replacement = gateway.writer._pool

    assert [str(r.pk) for r in records] == ids
    assert all(r.cost_usd > 0 for r in records)
    assert replacement is not None
    assert replacement is not pool
    with schema_context(ws.tenant.schema_name):
        assert UsageRecord.objects.filter(pk__in=ids).count() == 4
