"""The fake Anthropic upstream, driven directly with the official `anthropic` SDK."""

import asyncio
import json
import math
import time
from collections.abc import Iterator

import anthropic
import httpx
import httpx2
import pytest

from proxy.fake_upstream import RunningFake, input_tokens_for, running_fake_upstream
from proxy.sse import StreamUsageReader

KEY = "sk-ant-api03-test-key"
MODEL = "claude-sonnet-4-6"
VERSION = {"anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def fake() -> Iterator[RunningFake]:
    with running_fake_upstream(
        batch_seconds=0.2, slow_headers_seconds=5.0, reject_keys=["sk-ant-api03-revoked"]
    ) as running:
        yield running


@pytest.fixture
def client(fake: RunningFake) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake.base_url, api_key=KEY, max_retries=0)


def directive(**kwargs: object) -> str:
    return f"[[fake:{json.dumps(kwargs)}]]"


def ask(client: anthropic.Anthropic, text: str, **kwargs: object) -> anthropic.types.Message:
    return client.messages.create(
        model=MODEL, max_tokens=1024, messages=[{"role": "user", "content": text}], **kwargs
    )


def recorded(fake: RunningFake) -> list[dict]:
    return httpx.get(f"{fake.base_url}/_fake/requests").json()


# -- happy paths ------------------------------------------------------------------------------


def test_create_returns_a_message_with_deterministic_usage(client):
    text = "What is a solar eclipse? Answer briefly."
    message = ask(client, text)
    assert message.type == "message"
    assert message.id.startswith("msg_")
    assert message.model == MODEL
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello from the"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == math.ceil(len(text) / 4)
    assert message.usage.output_tokens == math.ceil(len("Hello from the") / 4)
    assert message.usage.cache_creation.ephemeral_5m_input_tokens == 0
    assert message.usage.service_tier == "standard"
    assert message.usage.inference_geo == "global"
    assert message._request_id.startswith("req_")


def test_raw_response_headers_match_the_real_api(client):
    raw = client.messages.with_raw_response.create(
        model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["content-type"] == "application/json"
    assert raw.headers["request-id"].startswith("req_")
    for kind in ("requests", "tokens", "input-tokens", "output-tokens"):
        for part in ("limit", "remaining", "reset"):
            assert raw.headers[f"anthropic-ratelimit-{kind}-{part}"]


def test_system_prompt_and_blocks_count_towards_input_tokens(client):
    system = "You are terse."
    content = [{"type": "text", "text": "One"}, {"type": "text", "text": "Two three"}]
    message = client.messages.create(
        model=MODEL, max_tokens=50, system=system, messages=[{"role": "user", "content": content}]
    )
    assert message.usage.input_tokens == math.ceil((len(system) + 3 + 9) / 4)


def test_stream_get_final_message_has_the_declared_usage(client):
    text = "Stream please " + directive(
        text_chunks=5,
        output_tokens=321,
        usage={
            "cache_read_input_tokens": 1000,
            "cache_creation": {"ephemeral_5m_input_tokens": 40, "ephemeral_1h_input_tokens": 60},
            "server_tool_use": {"web_search_requests": 2, "web_fetch_requests": 1},
        },
    )
    with client.messages.stream(
        model=MODEL, max_tokens=1024, messages=[{"role": "user", "content": text}]
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == "Hello from the fake upstream"
    assert final.usage.input_tokens == math.ceil(len(text) / 4)
    assert final.usage.output_tokens == 321
    assert final.usage.cache_read_input_tokens == 1000
    assert final.usage.cache_creation_input_tokens == 100
    assert final.usage.cache_creation.ephemeral_1h_input_tokens == 60
    assert final.usage.server_tool_use.web_search_requests == 2


def test_stream_with_thinking_and_tool_use_parses_in_the_sdk(client):
    with client.messages.stream(
        model="claude-opus-4-6",
        max_tokens=2048,
        thinking={"type": "adaptive"},
        tools=[{"name": "get_weather", "input_schema": {"type": "object"}}],
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "Weather?"}],
    ) as stream:
        final = stream.get_final_message()
    kinds = [block.type for block in final.content]
    assert kinds == ["thinking", "text", "tool_use"]
    assert final.content[0].signature
    assert final.content[2].name == "get_weather"
    assert final.content[2].input == {"query": "fake"}
    assert final.stop_reason == "tool_use"


def test_stream_has_every_event_type_with_event_lines(fake):
    body = {
        "model": MODEL,
        "max_tokens": 100,
        "stream": True,
        "thinking": {"type": "adaptive"},
        "messages": [{"role": "user", "content": "hi"}],
    }
    with httpx.stream(
        "POST",
        f"{fake.base_url}/v1/messages?beta=true",
        json=body,
        headers={"x-api-key": KEY, **VERSION},
    ) as response:
        raw = b"".join(response.iter_raw())
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    events = [block for block in raw.decode().split("\n\n") if block]
    names = [e.split("\n")[0].removeprefix("event: ") for e in events]
    assert names[0] == "message_start"
    assert names[-2:] == ["message_delta", "message_stop"]
    assert {"content_block_start", "content_block_delta", "content_block_stop", "ping"} <= set(
        names
    )
    for event in events:
        name, data = event.split("\n")
        assert json.loads(data.removeprefix("data: "))["type"] == name.removeprefix("event: ")
    assert b"signature_delta" in raw


def test_beta_create_and_count_tokens(client):
    message = client.beta.messages.create(
        model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.usage.input_tokens == 1
    text = "Count these characters please"
    count = client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": text}])
    assert count.input_tokens == math.ceil(len(text) / 4)
    assert count.input_tokens == input_tokens_for({"messages": [{"content": text}]})


def test_models_list_pages_and_retrieve(client):
    first = client.models.list(limit=5)
    assert len(first.data) == 5
    assert first.has_more
    everything = [model.id for model in client.models.list(limit=7)]
    assert len(everything) == len(set(everything)) == 18
    assert everything[0] == "claude-fable-5-2"
    after = client.models.list(limit=2, after_id=everything[2])
    assert [m.id for m in after.data] == everything[3:5]
    before = client.models.list(limit=2, before_id=everything[4])
    assert [m.id for m in before.data] == everything[2:4]
    model = client.models.retrieve("claude-haiku-4-5-20251001")
    assert model.display_name == "Claude Haiku 4.5"
    assert model.capabilities.batch.supported
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("claude-nope")


def test_batch_from_create_to_results(client, fake):
    requests = [
        {
            "custom_id": f"r{i}",
            "params": {
                "model": "claude-haiku-4-5",
                "max_tokens": 100,
                "messages": [{"role": "user", "content": "x" * (8 * (i + 1))}],
            },
        }
        for i in range(3)
    ]
    requests.append(
        {
            "custom_id": "bad",
            "params": {
                "model": MODEL,
                "max_tokens": 10,
                "messages": [{"role": "user", "content": directive(fault="500")}],
            },
        }
    )
    batch = client.messages.batches.create(requests=requests)
    assert batch.processing_status == "in_progress"
    assert batch.request_counts.processing == 4
    assert batch.results_url is None
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.delete(batch.id)
    for _ in range(200):
        batch = client.messages.batches.retrieve(batch.id)
        if batch.processing_status == "ended":
            break
        time.sleep(0.05)
    assert batch.processing_status == "ended"
    assert batch.results_url == f"{fake.base_url}/v1/messages/batches/{batch.id}/results"
    assert batch.request_counts.succeeded == 3
    assert batch.request_counts.errored == 1
    results = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
    assert results["bad"].type == "errored"
    for i in range(3):
        message = results[f"r{i}"].message
        assert message.usage.service_tier == "batch"
        assert message.usage.input_tokens == 2 * (i + 1)
    listed = [b.id for b in client.messages.batches.list(limit=10)]
    assert batch.id in listed
    deleted = client.messages.batches.delete(batch.id)
    assert deleted.type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(batch.id)


def test_batch_cancel_ends_with_canceled_results(client):
    fake_params = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "a"}]}
    batch = client.messages.batches.create(requests=[{"custom_id": "c", "params": fake_params}])
    canceled = client.messages.batches.cancel(batch.id)
    assert canceled.processing_status == "canceling"
    assert canceled.cancel_initiated_at is not None
    for _ in range(200):
        if client.messages.batches.retrieve(batch.id).processing_status == "ended":
            break
        time.sleep(0.05)
    results = list(client.messages.batches.results(batch.id))
    assert [r.result.type for r in results] == ["canceled"]


def test_batch_list_paginates_newest_first(client):
    params = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "a"}]}
    ids = [
        client.messages.batches.create(requests=[{"custom_id": "a", "params": params}]).id
        for _ in range(3)
    ]
    page = client.messages.batches.list(limit=2)
    assert [b.id for b in page.data] == ids[::-1][:2]
    assert page.has_more


# -- auth and errors --------------------------------------------------------------------------


def test_missing_key_is_401_in_the_error_shape(fake):
    response = httpx.post(f"{fake.base_url}/v1/messages", json={}, headers=VERSION)
    assert response.status_code == 401
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "authentication_error"
    assert body["request_id"] == response.headers["request-id"]
    assert response.headers["x-should-retry"] == "false"


@pytest.mark.parametrize("key", ["sk-ant-api03-invalid-abc", "sk-ant-api03-revoked"])
def test_invalid_or_rejected_key_is_401(fake, key):
    bad = anthropic.Anthropic(base_url=fake.base_url, api_key=key, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        ask(bad, "hi")


def test_reject_keys_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("FAKE_UPSTREAM_REJECT_KEYS", "k1, k2")
    from proxy.fake_upstream import create_app

    assert create_app().config.reject_keys == frozenset({"k1", "k2"})


def test_x_api_key_is_accepted_as_well_as_bearer(fake):
    body = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    x_key = httpx.post(
        f"{fake.base_url}/v1/messages", json=body, headers={"x-api-key": KEY, **VERSION}
    )
    bearer = httpx.post(
        f"{fake.base_url}/v1/messages",
        json=body,
        headers={"authorization": f"Bearer {KEY}", **VERSION},
    )
    assert x_key.status_code == bearer.status_code == 200


def test_bad_requests_get_400_and_unknown_paths_404(fake):
    headers = {"x-api-key": KEY, **VERSION}
    bad_json = httpx.post(f"{fake.base_url}/v1/messages", content=b"{nope", headers=headers)
    assert bad_json.status_code == 400
    assert bad_json.json()["error"]["type"] == "invalid_request_error"
    no_model = httpx.post(
        f"{fake.base_url}/v1/messages", json={"max_tokens": 1, "messages": []}, headers=headers
    )
    assert no_model.status_code == 400
    no_version = httpx.post(f"{fake.base_url}/v1/messages", json={}, headers={"x-api-key": KEY})
    assert no_version.status_code == 400
    unknown = httpx.get(f"{fake.base_url}/v1/files", headers=headers)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["type"] == "not_found_error"


# -- faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "exception", "status"),
    [
        ("500", anthropic.InternalServerError, 500),
        ("529", anthropic.OverloadedError, 529),
        ("429", anthropic.RateLimitError, 429),
    ],
)
def test_status_faults_raise_the_sdk_error(client, fault, exception, status):
    with pytest.raises(exception) as caught:
        ask(client, directive(fault=fault, retry_after=7))
    assert caught.value.status_code == status
    assert caught.value.request_id.startswith("req_")
    assert caught.value.response.headers["x-should-retry"] == "true"
    if status == 429:
        assert caught.value.response.headers["retry-after"] == "7"


def test_429_is_retried_by_the_sdk_as_the_real_api_would_be(fake):
    httpx.delete(f"{fake.base_url}/_fake/requests")
    retrying = anthropic.Anthropic(base_url=fake.base_url, api_key=KEY, max_retries=2)
    with pytest.raises(anthropic.RateLimitError):
        ask(retrying, directive(fault="429", retry_after=0.01))
    attempts = [dict(r["headers"])["x-stainless-retry-count"] for r in recorded(fake)]
    assert attempts == ["0", "1", "2"]


def read_raw_stream(fake: RunningFake, text: str, reader: StreamUsageReader) -> None:
    body = {
        "model": MODEL,
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": text}],
    }
    with httpx.stream(
        "POST", f"{fake.base_url}/v1/messages", json=body, headers={"x-api-key": KEY, **VERSION}
    ) as response:
        for chunk in response.iter_raw():
            reader.feed(chunk)


def sdk_stream(client: anthropic.Anthropic, text: str) -> anthropic.types.Message:
    with client.messages.stream(
        model=MODEL, max_tokens=50, messages=[{"role": "user", "content": text}]
    ) as stream:
        return stream.get_final_message()


CUT = (httpx.HTTPError, httpx2.HTTPError, anthropic.APIConnectionError)


def test_drop_mid_stream_ends_without_message_stop(client, fake):
    text = directive(fault="drop")
    reader = StreamUsageReader()
    with pytest.raises(httpx.RemoteProtocolError):
        read_raw_stream(fake, text, reader)
    assert reader.saw_message_start
    assert not reader.saw_message_stop
    assert reader.usage["input_tokens"] == math.ceil(len(text) / 4)
    with pytest.raises(CUT):
        sdk_stream(client, text)
    assert httpx.get(f"{fake.base_url}/_fake/stats").json()["streams_dropped"] >= 2


def test_drop_on_a_non_streaming_request_cuts_the_body(client):
    with pytest.raises(CUT):
        ask(client, directive(fault="drop"))


def test_error_event_raises_an_overloaded_status_error_after_200(client):
    with pytest.raises(anthropic.APIStatusError) as caught:
        sdk_stream(client, directive(fault="error_event"))
    assert caught.value.status_code == 200
    assert caught.value.type == "overloaded_error"


@pytest.mark.parametrize("fault", ["slow_headers", "timeout"])
def test_slow_headers_and_timeout_make_the_client_time_out(fake, fault):
    impatient = anthropic.Anthropic(base_url=fake.base_url, api_key=KEY, max_retries=0, timeout=0.3)
    with pytest.raises(anthropic.APITimeoutError):
        ask(impatient, directive(fault=fault))


def test_slow_headers_eventually_answer(fake):
    with running_fake_upstream(slow_headers_seconds=0.05) as quick:
        message = ask(
            anthropic.Anthropic(base_url=quick.base_url, api_key=KEY, max_retries=0),
            directive(fault="slow_headers", delay_ms=10),
        )
    assert message.stop_reason == "end_turn"


def test_output_tokens_are_capped_by_max_tokens(client):
    message = client.messages.create(
        model=MODEL,
        max_tokens=50,
        messages=[{"role": "user", "content": directive(output_tokens=500)}],
    )
    assert message.usage.output_tokens == 50
    assert message.stop_reason == "max_tokens"


def test_request_params_speed_and_geo_show_in_usage(fake):
    body = {
        "model": "claude-opus-4-6",
        "max_tokens": 5,
        "speed": "fast",
        "inference_geo": "us",
        "messages": [{"role": "user", "content": "hi"}],
    }
    usage = httpx.post(
        f"{fake.base_url}/v1/messages", json=body, headers={"x-api-key": KEY, **VERSION}
    ).json()["usage"]
    assert usage["speed"] == "fast"
    assert usage["inference_geo"] == "us"


# -- recording ---------------------------------------------------------------------------------


def test_requests_are_recorded_newest_last_and_can_be_cleared(client, fake):
    httpx.delete(f"{fake.base_url}/_fake/requests")
    ask(client, "first")
    client.models.list()
    seen = recorded(fake)
    assert [(r["method"], r["path"]) for r in seen] == [
        ("POST", "/v1/messages"),
        ("GET", "/v1/models"),
    ]
    headers = dict(seen[0]["headers"])
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers["anthropic-version"] == "2026-10-21"
    assert json.loads(seen[0]["body"])["messages"][0]["content"] == "first"
    assert httpx.delete(f"{fake.base_url}/_fake/requests").json() == {"deleted": 2}
    assert recorded(fake) == []


def test_query_strings_and_exact_body_bytes_are_recorded(fake):
    httpx.delete(f"{fake.base_url}/_fake/requests")
    raw = b'{"model": "m",   "max_tokens": 1, "messages": []}'
    httpx.post(
        f"{fake.base_url}/v1/messages?beta=true",
        content=raw,
        headers={"x-api-key": KEY, **VERSION},
    )
    (seen,) = recorded(fake)
    assert seen["query"] == "beta=true"
    import base64

    assert base64.b64decode(seen["body_base64"]) == raw


# -- the SSE reader on the fake's streams -----------------------------------------------------


@pytest.mark.parametrize("chunk_delay_ms", [0, 2])
def test_sse_reader_on_the_fake_stream_gives_the_declared_usage(fake, chunk_delay_ms):
    usage = {
        "cache_read_input_tokens": 500,
        "cache_creation": {"ephemeral_5m_input_tokens": 11, "ephemeral_1h_input_tokens": 22},
        "server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 0},
        "service_tier": "priority",
        "speed": "fast",
        "inference_geo": "us",
    }
    text = "Count me " + directive(
        usage=usage, output_tokens=77, text_chunks=12, chunk_delay_ms=chunk_delay_ms
    )
    body = {
        "model": "claude-opus-4-6",
        "max_tokens": 1000,
        "stream": True,
        "messages": [{"role": "user", "content": text}],
    }
    reader = StreamUsageReader()
    with httpx.stream(
        "POST", f"{fake.base_url}/v1/messages", json=body, headers={"x-api-key": KEY, **VERSION}
    ) as response:
        for chunk in response.iter_raw():
            reader.feed(chunk)
    assert reader.usage == {
        "input_tokens": math.ceil(len(text) / 4),
        "cache_creation_input_tokens": 33,
        "cache_read_input_tokens": 500,
        "cache_creation": {"ephemeral_5m_input_tokens": 11, "ephemeral_1h_input_tokens": 22},
        "output_tokens": 77,
        "service_tier": "priority",
        "inference_geo": "us",
        "speed": "fast",
        "server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 0},
    }
    assert reader.saw_message_stop
    assert reader.stop_reason == "end_turn"
    assert reader.model == "claude-opus-4-6"


async def test_many_concurrent_streams_are_held_open(fake):
    stats_before = httpx.get(f"{fake.base_url}/_fake/stats").json()
    body = {
        "model": MODEL,
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": directive(text_chunks=5, chunk_delay_ms=100)}],
    }
    limits = httpx.Limits(max_connections=300)
    async with httpx.AsyncClient(base_url=fake.base_url, limits=limits, timeout=30) as http:

        async def one() -> bool:
            reader = StreamUsageReader()
            async with http.stream(
                "POST", "/v1/messages", json=body, headers={"x-api-key": KEY, **VERSION}
            ) as response:
                async for chunk in response.aiter_raw():
                    reader.feed(chunk)
            return reader.saw_message_stop

        results = await asyncio.gather(*(one() for _ in range(200)))
    assert all(results)
    stats = httpx.get(f"{fake.base_url}/_fake/stats").json()
    assert stats["streams_completed"] - stats_before["streams_completed"] == 200
    assert stats["max_active_streams"] >= 100


def test_a_client_that_goes_away_mid_stream_is_noticed(fake):
    before = httpx.get(f"{fake.base_url}/_fake/stats").json()["streams_disconnected"]
    body = {
        "model": MODEL,
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": directive(text_chunks=50, chunk_delay_ms=20)}],
    }
    with httpx.stream(
        "POST", f"{fake.base_url}/v1/messages", json=body, headers={"x-api-key": KEY, **VERSION}
    ) as response:
        next(response.iter_raw())
    for _ in range(100):
        stats = httpx.get(f"{fake.base_url}/_fake/stats").json()
        if stats["streams_disconnected"] > before:
            break
        time.sleep(0.02)
    assert stats["streams_disconnected"] == before + 1
