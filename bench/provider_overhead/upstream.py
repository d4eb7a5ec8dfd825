"""A fast OpenAI-compatible upstream for benchmarks: canned answers, no thinking.

Raw ASGI on uvicorn with httptools, so that the upstream costs far less than what is
measured. Run: ``python -m bench.provider_overhead.upstream PORT``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import uvicorn

ANSWER = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1,
        "model": "bench-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "The quick brown fox jumps."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18},
    }
).encode()


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: bool = False) -> bytes:
    body: dict[str, Any] = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "bench-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        body = {
            **body,
            "choices": [],
            "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18},
        }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


STREAM = [
    _chunk({"role": "assistant", "content": ""}),
    *(_chunk({"content": word}) for word in ("The ", "quick ", "brown ", "fox ", "jumps.")),
    _chunk({}, finish="stop"),
    _chunk({}, usage=True),
    b"data: [DONE]\n\n",
]
MODELS = json.dumps({"object": "list", "data": [{"id": "bench-model", "object": "model"}]}).encode()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """POST /v1/chat/completions (stream or not), GET /v1/models."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"].endswith("/models"):
        await _send(send, MODELS, b"application/json")
        return
    if b'"stream":true' in body.replace(b" ", b""):
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        for piece in STREAM:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    await _send(send, ANSWER, b"application/json")


async def _send(send: Any, body: bytes, content_type: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def serve(port: int, *, keep_alive_s: int = 5) -> None:
    """Serve the fake on 127.0.0.1:``port`` until stopped (``keep_alive_s``: uvicorn's idle
    connection timeout; bench.proxy_compare raises it, see ``start_upstream``)."""
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        http="httptools",
        loop="uvloop",
        lifespan="off",
        backlog=4096,
        timeout_keep_alive=keep_alive_s,
    )


if __name__ == "__main__":  # python -m bench.provider_overhead.upstream PORT [KEEP_ALIVE_S]
    serve(int(sys.argv[1]), keep_alive_s=int(sys.argv[2]) if len(sys.argv) > 2 else 5)
