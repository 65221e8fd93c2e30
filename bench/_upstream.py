"""The benchmark's upstream: the project's fake Anthropic upstream plus one stamping stream.

`python bench/_upstream.py --port P` serves proxy/fake_upstream unchanged, except that a
`POST /v1/messages` carrying the header `x-bench-stamp: <events>,<gap_ms>` is answered by a
minimal Anthropic-shaped SSE stream in which every event carries `"bench_ts": <ns>`, the sender's
time.perf_counter_ns() taken immediately before the event is handed to the server. On Linux that
clock is CLOCK_MONOTONIC, shared by all processes, so a client can compute each event's
arrival - send, through the proxy and directly, and the difference is the proxy's relay delay.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvicorn

from proxy.fake_upstream.app import create_app
from proxy.fake_upstream.server import quiet_drop_logs


def _event(name: str, data: dict[str, Any]) -> bytes:
    data["bench_ts"] = time.perf_counter_ns()
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _drain(receive: Any) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return


async def stamped_stream(send: Any, events: int, gap_ms: float) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache"),
                (b"request-id", b"req_bench_stamp"),
            ],
        }
    )
    usage = {"input_tokens": 10, "output_tokens": 1}
    message = {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    body = {"type": "http.response.body", "more_body": True}
    await send(
        {**body, "body": _event("message_start", {"type": "message_start", "message": message})}
    )
    block = {"type": "text", "text": ""}
    start = {"type": "content_block_start", "index": 0, "content_block": block}
    await send({**body, "body": _event("content_block_start", start)})
    for _ in range(events):
        await asyncio.sleep(gap_ms / 1000)
        delta = {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "x"},
        }
        await send({**body, "body": _event("content_block_delta", delta)})
    await send(
        {**body, "body": _event("content_block_stop", {"type": "content_block_stop", "index": 0})}
    )
    final = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"input_tokens": 10, "output_tokens": events},
    }
    await send({**body, "body": _event("message_delta", final)})
    await send({**body, "body": _event("message_stop", {"type": "message_stop"})})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def create_bench_app() -> Any:
    fake = create_app(record_limit=10)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"x-bench-stamp":
                    events, gap_ms = value.decode().split(",")
                    await _drain(receive)
                    await stamped_stream(send, int(events), float(gap_ms))
                    return
        await fake(scope, receive, send)

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    quiet_drop_logs()
    uvicorn.run(
        create_bench_app(),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        backlog=4096,
        timeout_keep_alive=60,
    )


if __name__ == "__main__":
    main()
