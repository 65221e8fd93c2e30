"""StreamUsageReader against the recorded fixture streams, split every way."""

from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.sse import StreamUsageReader

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


EXPECTED = {
    "stream-tool-use-recorded.sse": {
        "usage": {
            "input_tokens": 656,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 74,
            "service_tier": "standard",
            "inference_geo": "not_available",
        },
        "model": "claude-haiku-4-5-20251001",
        "message_id": "msg_01AusY9WEbCaj3N7Tv5J4YjH",
        "stop_reason": "tool_use",
        "error": None,
        "start": True,
        "stop": True,
        "events": 16,
    },
    "stream-basic-text.sse": {
        "usage": {"input_tokens": 11, "output_tokens": 6},
        "model": "claude-3-opus-latest",
        "message_id": "msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK",
        "stop_reason": "end_turn",
        "error": None,
        "start": True,
        "stop": True,  # after close(): the file lacks the final blank line
        "events": 9,
    },
    "stream-thinking-signature-refusal.sse": {
        "usage": {
            "input_tokens": 28,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 106,
            "service_tier": "standard",
            "inference_geo": "global",
            "output_tokens_details": {"thinking_tokens": 67},
            "iterations": [
                {
                    "input_tokens": 28,
                    "output_tokens": 106,
                    "cache_read_input_tokens": 0,
                    "cache_creation_input_tokens": 0,
                    "cache_creation": {
                        "ephemeral_5m_input_tokens": 0,
                        "ephemeral_1h_input_tokens": 0,
                    },
                    "type": "message",
                }
            ],
        },
        "model": "claude-fable-5",
        "message_id": "msg_fixture_a_0001",
        "stop_reason": "refusal",
        "error": None,
        "start": True,
        "stop": True,
        "events": 14,
    },
    "stream-error-event.sse": {
        "usage": {},
        "model": None,
        "message_id": None,
        "stop_reason": None,
        "error": ("overloaded_error", "Overloaded"),
        "start": False,
        "stop": False,
        "events": 1,
    },
}


def check(reader: StreamUsageReader, expected: dict) -> None:
    assert reader.usage == expected["usage"]
    assert reader.model == expected["model"]
    assert reader.message_id == expected["message_id"]
    assert reader.stop_reason == expected["stop_reason"]
    assert reader.error == expected["error"]
    assert reader.saw_message_start is expected["start"]
    assert reader.saw_message_stop is expected["stop"]
    assert reader.event_count == expected["events"]


def read(chunks: list[bytes]) -> StreamUsageReader:
    reader = StreamUsageReader()
    for chunk in chunks:
        reader.feed(chunk)
    reader.close()
    return reader


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_fed_whole(name):
    check(read([fixture(name)]), EXPECTED[name])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_fed_byte_by_byte(name):
    data = fixture(name)
    check(read([data[i : i + 1] for i in range(len(data))]), EXPECTED[name])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_with_crlf_line_endings_split_between_cr_and_lf(name):
    data = fixture(name).replace(b"\n", b"\r\n")
    chunks = [data[i : i + 1] for i in range(len(data))]
    check(read(chunks), EXPECTED[name])
    check(read(data.split(b"\r")), EXPECTED[name])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_with_bare_cr_line_endings(name):
    check(read([fixture(name).replace(b"\n", b"\r")]), EXPECTED[name])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(EXPECTED)),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=40),
    crlf=st.booleans(),
)
def test_fixture_split_anywhere_gives_the_same_result(name, cuts, crlf):
    data = fixture(name)
    if crlf:
        data = data.replace(b"\n", b"\r\n")
    check(read(split_at(data, cuts)), EXPECTED[name])


def test_output_tokens_are_overwritten_by_the_last_delta_not_summed():
    reader = read([fixture("stream-tool-use-recorded.sse")])
    assert reader.usage["output_tokens"] == 74  # message_start said 26; 26 + 74 would be 100


def test_without_close_a_terminated_stream_is_complete():
    reader = StreamUsageReader()
    reader.feed(fixture("stream-tool-use-recorded.sse"))
    check(reader, EXPECTED["stream-tool-use-recorded.sse"])


def test_only_the_last_message_delta_counts_and_start_only_fields_are_kept():
    stream = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1",'
        b'"model":"claude-sonnet-4-6","usage":{"input_tokens":10,"output_tokens":1,'
        b'"cache_creation_input_tokens":5,"cache_creation":{"ephemeral_5m_input_tokens":5,'
        b'"ephemeral_1h_input_tokens":0},"service_tier":"standard","inference_geo":"us",'
        b'"speed":"fast"}}}\n\n'
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":null},'
        b'"usage":{"output_tokens":40}}\n\n'
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"max_tokens"},'
        b'"usage":{"output_tokens":50,"input_tokens":null,"cache_creation_input_tokens":7,'
        b'"cache_creation":{"ephemeral_5m_input_tokens":99},"service_tier":"batch",'
        b'"server_tool_use":{"web_search_requests":2}}}\n\n'
    )
    reader = read([stream])
    assert reader.usage == {
        "input_tokens": 10,
        "output_tokens": 50,
        "cache_creation_input_tokens": 7,
        "cache_creation": {"ephemeral_5m_input_tokens": 5, "ephemeral_1h_input_tokens": 0},
        "service_tier": "standard",
        "inference_geo": "us",
        "speed": "fast",
        "server_tool_use": {"web_search_requests": 2},
    }
    assert reader.stop_reason == "max_tokens"
    assert not reader.saw_message_stop


def test_a_stream_cut_before_message_delta_keeps_the_provisional_start_usage():
    data = fixture("stream-tool-use-recorded.sse")
    cut = data.index(b"event: message_delta")
    reader = StreamUsageReader()
    reader.feed(data[:cut])
    assert reader.usage["output_tokens"] == 26
    assert reader.saw_message_start
    assert not reader.saw_message_stop


def test_multiple_data_lines_are_joined_and_comments_ignored():
    stream = (
        b": keep-alive comment\n"
        b"event: message_start\n"
        b'data: {"type":"message_start",\n'
        b'data:  "message":{"id":"msg_2","model":"m","usage":{"input_tokens":3,\n'
        b": a comment in the middle\n"
        b'data: "output_tokens":1}}}\n'
        b"\n"
        b'event: ping\ndata: {"type": "ping"}\n\n'
    )
    reader = read([stream])
    assert reader.usage == {"input_tokens": 3, "output_tokens": 1}
    assert reader.message_id == "msg_2"
    assert reader.event_count == 2


def test_content_block_events_are_not_parsed(monkeypatch):
    import json

    calls: list[bytes] = []
    real = json.loads

    def spy(data, *args, **kwargs):
        calls.append(data)
        return real(data, *args, **kwargs)

    monkeypatch.setattr("proxy.sse.json.loads", spy)
    read([fixture("stream-thinking-signature-refusal.sse")])
    assert len(calls) == 2  # message_start and message_delta only


def test_events_without_an_event_line_are_ignored():
    reader = read([b'data: {"type":"message_start","message":{"usage":{"input_tokens":5}}}\n\n'])
    assert reader.usage == {}
    assert not reader.saw_message_start


def test_malformed_json_in_a_parsed_event_is_ignored():
    reader = read(
        [
            b"event: message_start\ndata: {not json\n\n",
            b"event: message_delta\ndata: [1, 2]\n\n",
            b'event: error\ndata: {"error": "flat"}\n\n',
            b"event: message_start\ndata: " + b"[" * 100_000 + b"\n\n",
        ]
    )
    assert reader.usage == {}
    assert reader.error is None
    assert reader.event_count == 4


def test_an_overlong_unterminated_line_is_dropped_without_growing_memory():
    reader = StreamUsageReader()
    reader.feed(b"event: content_block_start\ndata: ")
    for _ in range(10):
        reader.feed(b"x" * 1_000_000)
    reader.feed(b"\n\n")
    reader.feed(fixture("stream-tool-use-recorded.sse"))
    assert reader.usage["output_tokens"] == 74
    assert len(reader._pending) < 100


@settings(max_examples=200, deadline=None)
@given(chunks=st.lists(st.binary(max_size=200), max_size=30))
def test_garbage_never_raises(chunks):
    reader = StreamUsageReader()
    for chunk in chunks:
        reader.feed(chunk)
    reader.close()
    assert isinstance(reader.usage, dict)


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(
        st.sampled_from(
            [
                b"event: message_start",
                b"event: message_delta",
                b"event: error",
                b"event: ping",
                b"data: {}",
                b'data: {"message": 1, "usage": [], "delta": "x", "error": {"type": 5}}',
                b'data: {"message": {"usage": {"input_tokens": "many"}, "model": 3}}',
                b'data: {"usage": {"output_tokens": null}, "delta": {"stop_reason": 7}}',
                b"data: null",
                b"data: \xff\xfe",
                b"",
                b":",
                b"retry: 10",
            ]
        ),
        max_size=40,
    )
)
def test_hostile_but_well_framed_events_never_raise(lines):
    reader = read([b"\n".join(lines)])
    assert isinstance(reader.usage, dict)
    if reader.error is not None:
        assert all(isinstance(x, str) for x in reader.error)
