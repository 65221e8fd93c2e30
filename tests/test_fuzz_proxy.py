"""Bad input against the live gateway: property-based fuzzing of request parsing (arbitrary bytes,
JSON shapes, deep nesting, invalid UTF-8, odd header values, CR/LF injection on a raw socket),
oversize bodies, and adversarial SSE for the usage reader feeding the price book.

Properties: no 5xx from our own code (a 5xx is only ever the fake upstream's own answer relayed),
every error is Anthropic-shaped JSON, the gateway keeps serving, and every request that got a
request id leaves exactly one usage record (the record writer survives whatever it is fed).
"""

import json
import uuid
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.models import UsageRecord
from conftest import in_tenant
from proxy.sse import StreamUsageReader
from proxy.tests.gateway_support import raw_exchange, wait_record

pytestmark = pytest.mark.django_db(transaction=False)

MODEL = "claude-sonnet-4-6"
FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
STATS: Counter = Counter()

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=30,
)
message_keys = st.sampled_from(
    ["model", "messages", "max_tokens", "stream", "system", "tools", "metadata", "requests"]
)
shaped_bodies = st.dictionaries(message_keys, json_values, max_size=6).map(
    lambda body: {"model": MODEL, "max_tokens": 5, **body}
)


class Probe:
    """Sends requests to the gateway and checks each answer; remembers request ids."""

    def __init__(self, gateway: Any) -> None:
        self.url = gateway.url
        self.ws = gateway.workspaces["a"]
        self.fake = gateway.fake
        self.client = httpx.Client(base_url=self.url, timeout=30)
        self.request_ids: list[str] = []

    def upstream_count(self) -> int:
        return len(httpx.get(self.fake.base_url + "/_fake/requests").json())

    def send(self, path: str, content: bytes, headers: dict[str, Any] | None = None) -> Any:
        before = self.upstream_count()
        response = self.client.post(
            path,
            content=content,
            headers={
                "x-api-key": self.ws.key,
                "anthropic-version": "2023-06-01",
                "content-type": "application/json",
                **(headers or {}),
            },
        )
        forwarded = self.upstream_count() > before
        STATS[f"{path} {response.status_code}"] += 1
        if response.status_code >= 500:
            assert forwarded, f"our own {response.status_code}: {response.text[:300]}"
        if response.status_code >= 400 and not forwarded:
            try:
                body = response.json()
            except ValueError:
                raise AssertionError(
                    f"{response.status_code} not JSON: {response.content[:200]!r} "
                    f"{dict(response.headers)} for {headers!r}"
                ) from None
            assert body["type"] == "error", body
            assert isinstance(body["error"]["type"], str)
            assert isinstance(body["error"]["message"], str)
        request_id = response.headers.get("x-tokenscope-request-id")
        assert request_id, "every answer after the key carries our request id"
        self.request_ids.append(request_id)
        return response

    def all_recorded_once(self) -> int:
        for request_id in self.request_ids[-1:]:
            wait_record(self.ws.tenant, request_id)
        with in_tenant(self.ws.tenant):
            found = UsageRecord.objects.filter(pk__in=self.request_ids).count()
        for request_id in self.request_ids:
            if found == len(self.request_ids):
                break
            wait_record(self.ws.tenant, request_id)
            with in_tenant(self.ws.tenant):
                found = UsageRecord.objects.filter(pk__in=self.request_ids).count()
        assert found == len(set(self.request_ids))
        return found


@pytest.fixture(scope="module")
def probe(sec_gateway):
    probe = Probe(sec_gateway)
    yield probe
    probe.client.close()


PATHS = ["/v1/messages", "/v1/messages/count_tokens", "/v1/messages/batches"]


@FUZZ
@given(body=shaped_bodies, path=st.sampled_from(PATHS))
def _fuzz_shapes(probe: Probe, body: dict, path: str) -> None:
    probe.send(path, json.dumps(body).encode())


@FUZZ
@given(content=st.binary(max_size=300), path=st.sampled_from(PATHS))
def _fuzz_bytes(probe: Probe, content: bytes, path: str) -> None:
    response = probe.send(path, content)
    try:
        json.loads(content)
    except ValueError:
        assert response.status_code == 400


@FUZZ
@given(
    # Every byte a header value may hold (HTTP/1.1 obs-text included; DEL and controls are
    # refused by the HTTP server itself with a plain 400 before our code runs).
    version=st.text(
        st.characters(codec="latin-1", min_codepoint=32, exclude_characters="\x7f"), max_size=40
    ),
    beta=st.text(
        st.characters(codec="latin-1", min_codepoint=32, exclude_characters="\x7f"), max_size=80
    ),
)
def _fuzz_headers(probe: Probe, version: str, beta: str) -> None:
    body = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"anthropic-version": version.strip() or "x", "anthropic-beta": beta.strip()}
    probe.send(
        "/v1/messages",
        json.dumps(body).encode(),
        {k: v.encode("latin-1") for k, v in headers.items() if v},
    )


def test_fuzzed_bodies_and_headers_never_make_us_fail(probe) -> None:
    STATS.clear()
    _fuzz_shapes(probe)
    _fuzz_bytes(probe)
    _fuzz_headers(probe)
    recorded = probe.all_recorded_once()
    total = sum(STATS.values())
    print(f"\n[fuzz] {total} fuzzed requests, {recorded} records, statuses {dict(STATS)}")
    assert total >= 300


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("100k nested arrays", _deep(100_000)),
        ("100k nested objects", b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
        (
            "deep content inside a valid request",
            b'{"model": "claude-sonnet-4-6", "max_tokens": 5, "messages": [{"role": "user", '
            b'"content": ' + _deep(100_000) + b"}]}",
        ),
        ("invalid utf-8", b'{"model": "claude-sonnet-4-6", "x": "\xff\xfe\xc3"}'),
        ("lone surrogate escape", b'{"model": "claude-sonnet-4-6", "x": "\\ud800"}'),
        ("huge integer", b'{"model": "claude-sonnet-4-6", "max_tokens": ' + b"9" * 5000 + b"}"),
        ("nan", b'{"model": "claude-sonnet-4-6", "max_tokens": NaN}'),
        ("empty", b""),
    ],
)
def test_pathological_bodies_get_a_clear_answer(probe, name, content) -> None:
    for path in PATHS:
        response = probe.send(path, content)
        assert response.status_code < 500 or response.status_code in (502, 529), name
    if name in {"100k nested arrays", "100k nested objects", "invalid utf-8", "empty"}:
        assert response.status_code == 400
        assert response.json()["error"]["type"] == "invalid_request_error"
    probe.all_recorded_once()


def test_an_oversize_body_gets_413_before_it_is_read_whole(probe, settings) -> None:
    settings.PROXY_MAX_BODY_BYTES = 10_000
    response = probe.send("/v1/messages", b'{"model": "x", "pad": "' + b"y" * 50_000 + b'"}')
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"
    probe.all_recorded_once()


@pytest.mark.parametrize(
    "header",
    [
        b"anthropic-beta: a\rx-evil: injected",
        b"anthropic-beta: a\nx-evil: injected",
        b"anthropic-beta: a\x00x-evil",
        b"anthropic-beta: a%0d%0ax-evil: injected",
        b"anthropic-beta: a\r\n x-evil: folded",
        b"anthropic-beta: a\r\n\r\nGET /v1/models HTTP/1.1",
    ],
)
def test_cr_lf_or_nul_inside_a_header_never_reaches_upstream(probe, header) -> None:
    """A CR, LF or NUL inside a value is refused by the HTTP server or ends the line there;
    no forwarded value ever carries one, and an encoded %0d%0a stays literal text."""
    body = json.dumps(
        {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    host = urlsplit(probe.url).netloc.encode()
    request = (
        b"POST /v1/messages HTTP/1.1\r\nHost: " + host + b"\r\n"
        b"x-api-key: "
        + probe.ws.key.encode()
        + b"\r\nanthropic-version: 2023-06-01\r\n"
        + header
        + b"\r\ncontent-type: application/json\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\nconnection: close\r\n\r\n"
        + body
    )
    before = probe.upstream_count()
    answer = raw_exchange(probe.url, request)
    status = int(answer.split(b" ", 2)[1])
    assert status < 500
    seen = httpx.get(probe.fake.base_url + "/_fake/requests").json()[before:]
    assert len(seen) <= 1
    for forwarded in seen:
        for name, value in forwarded["headers"]:
            assert not set("\r\n\x00") & set(name + value), (name, value)
            if b"%0d%0a" in header and name.lower() == "anthropic-beta":
                assert value == "a%0d%0ax-evil: injected"
    STATS[f"raw {status}"] += 1
    # The gateway still serves normally afterwards.
    assert probe.send("/v1/messages", body).status_code == 200
    probe.all_recorded_once()


def _directive(**options: Any) -> str:
    return "[[fake:" + json.dumps(options) + "]]"


@pytest.mark.parametrize(
    "usage",
    [
        {"input_tokens": 2**31},
        {"output_tokens": 10**30},
        {"input_tokens": "many", "cache_read_input_tokens": None},
        {"input_tokens": -5, "cache_read_input_tokens": 1.5e300},
        {"server_tool_use": [], "output_tokens_details": "x"},
        {"service_tier": {"nested": True}, "inference_geo": 7},
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_absurd_usage_from_upstream_still_leaves_exactly_one_record(probe, usage, stream) -> None:
    """Anthropic never sends these; a record must still be written (unpriced if need be)."""
    body = {
        "model": MODEL,
        "max_tokens": 5,
        "stream": stream,
        "messages": [{"role": "user", "content": "hi " + _directive(usage=usage)}],
    }
    response = probe.send("/v1/messages", json.dumps(body).encode())
    assert response.status_code == 200
    record = wait_record(probe.ws.tenant, response.headers["x-tokenscope-request-id"])
    assert 0 <= record.input_tokens <= 2**31 - 1
    assert 0 <= record.output_tokens <= 2**31 - 1


@pytest.mark.parametrize(
    "model",
    [r"claude-sonnet-4-6\u0000", r"\ud800", "x" * 5000, r"claude\r\nx-evil: 1"],
)
def test_a_hostile_model_name_gets_an_answer_and_one_record(probe, model) -> None:
    content = (
        b'{"model": "' + model.encode() + b'", "max_tokens": 5, '
        b'"messages": [{"role": "user", "content": "hi\\u0000 \\udfff"}]}'
    )
    response = probe.send("/v1/messages", content)  # a 5xx only as the fake upstream's own
    wait_record(probe.ws.tenant, response.headers["x-tokenscope-request-id"])


# ---- SSE: adversarial usage values through the reader and the price book ---------------------

usage_values = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
)
usage_dicts = st.dictionaries(
    st.sampled_from(
        [
            "input_tokens",
            "output_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
            "cache_creation",
            "server_tool_use",
            "service_tier",
        ]
    ),
    usage_values,
    max_size=6,
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(start=usage_dicts, delta=usage_dicts, model=st.sampled_from([MODEL, "", "no-such"]))
def test_adversarial_usage_in_a_stream_never_breaks_the_reader_or_the_price(
    start, delta, model
) -> None:
    events = (
        b"event: message_start\ndata: "
        + json.dumps(
            {"type": "message_start", "message": {"model": model, "usage": start}}
        ).encode()
        + b"\n\nevent: message_delta\ndata: "
        + json.dumps({"type": "message_delta", "usage": delta}).encode()
        + b"\n\n"
    )
    reader = StreamUsageReader()
    reader.feed(events)
    reader.close()
    assert isinstance(reader.usage, dict)
    # Pricing such values may fail; the record writer then keeps the record unpriced (see
    # test_absurd_usage_from_upstream_still_leaves_exactly_one_record, end to end).


def test_a_deeply_nested_data_line_is_ignored() -> None:
    reader = StreamUsageReader()
    reader.feed(b"event: message_start\ndata: " + _deep(100_000) + b"\n\n")
    reader.feed(b"event: message_delta\ndata: " + b'{"a":' * 50_000 + b"\n\n")
    reader.close()
    assert reader.usage == {} or isinstance(reader.usage, dict)


def test_a_made_up_model_that_upstream_refuses_alerts_no_operator(probe) -> None:
    """Only a model Anthropic actually served is an unpriced model worth an operator email; a
    client's made-up name (answered with an error) must not mail operators or forge log lines."""
    from tokenscope.lib.redis import get_redis

    model = "made-up-" + uuid.uuid4().hex[:8] + "\r\nforged log line"
    body = {
        "model": model,
        "max_tokens": 5,
        "messages": [{"role": "user", "content": 'hi [[fake:{"fault": "500"}]]'}],
    }
    response = probe.send("/v1/messages", json.dumps(body).encode())
    assert response.status_code == 500  # the fake upstream's own answer, relayed
    record = wait_record(probe.ws.tenant, response.headers["x-tokenscope-request-id"])
    assert record.status_code == 500
    # The writer handles batches in order: once a later record is in, the alert step has run.
    ok = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    later = probe.send("/v1/messages", json.dumps(ok).encode())
    wait_record(probe.ws.tenant, later.headers["x-tokenscope-request-id"])
    probe.all_recorded_once()
    assert not get_redis().exists(f"ts:unpriced-model:{record.model}")
