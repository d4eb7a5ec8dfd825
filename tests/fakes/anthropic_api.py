"""A loopback fake of Anthropic's Messages API: ``POST /v1/messages`` and ``GET /v1/models``.

It checks what the real API checks where a provider bug would show: the ``x-api-key`` and
``anthropic-version`` headers, a required ``max_tokens``, no ``system`` role inside
``messages``, strictly alternating turns, non-empty text, tool_use ids matching
``^[a-zA-Z0-9_-]+$``, and every ``tool_result`` answering a ``tool_use`` of the assistant
turn right before it (and every such ``tool_use`` answered). Errors use the API's body
``{"type": "error", "error": {"type", "message"}}``; streams use its SSE events. The checks
and the error bodies live in ``anthropic_errors``; this module records requests and renders
answers and streams.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.anthropic_errors import Invalid, api_error, check_headers, check_request, failure
from tests.fakes.llm_script import (
    CutStream,
    Fail,
    Malformed,
    RecordedRequest,
    Reply,
    Script,
    StreamError,
    split_text,
)

API_VERSION = "2023-06-01"
MAX_PAGE = 1000
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def _new_tool_id() -> str:
    return f"toolu_{uuid.uuid4().hex[:24]}"


# --- the normalized view of a request -------------------------------------------------------


def _result_text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return "" if content is None else str(content)


def _normalized(body: dict[str, Any]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    system = body.get("system")
    if isinstance(system, str) and system:
        pairs.append(("system", system))
    elif isinstance(system, list):
        pairs.extend(("system", str(b.get("text", ""))) for b in system if isinstance(b, dict))
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        role, content = str(message.get("role")), message.get("content")
        if isinstance(content, str):
            pairs.append((role, content))
            continue
        for block in content if isinstance(content, list) else []:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                pairs.append((role, str(block.get("text", ""))))
            elif kind == "tool_use":
                pairs.append((role, f"call {block.get('name')}({json.dumps(block.get('input'))})"))
            elif kind == "tool_result":
                text = _result_text(block.get("content"))
                pairs.append(("tool", f"{block.get('tool_use_id')}={text}"))
    return pairs


def _record(request: Request, raw: bytes, body: Any) -> RecordedRequest:
    chat = request.url.path == "/v1/messages" and isinstance(body, dict)
    return RecordedRequest(
        method=request.method,
        path=request.url.path,
        headers=dict(request.headers),
        body=body if body is not None else raw,
        model=str(body.get("model")) if chat else None,
        stream=bool(body.get("stream")) if chat else False,
        messages=_normalized(body) if chat else [],
        tools=[str(t.get("name")) for t in body.get("tools") or [] if isinstance(t, dict)]
        if chat
        else [],
        max_tokens=body.get("max_tokens") if chat else None,
    )


# --- answers ----------------------------------------------------------------------------------


def _content(reply: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text else []
    for call in reply.tool_calls:
        blocks.append(
            {
                "type": "tool_use",
                "id": call.id or _new_tool_id(),
                "name": call.name,
                "input": call.arguments,
            }
        )
    return blocks


def _message(
    model: str, reply: Reply, *, content: list[dict[str, Any]], stop: str | None, output_tokens: int
) -> dict[str, Any]:
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": reply.input_tokens, "output_tokens": output_tokens},
    }


def _sse(data: dict[str, Any]) -> str:
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n"


def _stream_frames(model: str, step: Reply | CutStream | StreamError | Malformed) -> list[str]:
    """Every SSE frame of one streamed answer, cut short the way a broken ``step`` asks."""
    reply = (
        step if isinstance(step, Reply) else getattr(step, "reply", Reply(text="malformed ahead"))
    )
    frames = [
        _sse(
            {
                "type": "message_start",
                "message": _message(model, reply, content=[], stop=None, output_tokens=1),
            }
        )
    ]
    chunks = split_text(reply.text)
    if chunks:
        frames.append(
            _sse(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                }
            )
        )
    frames.append(_sse({"type": "ping"}))
    deltas = [
        _sse(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": c}}
        )
        for c in chunks
    ]
    if not isinstance(step, Reply):
        frames.extend(deltas[: step.after_chunks])
        if isinstance(step, StreamError):
            kind = "overloaded_error" if step.kind == "overloaded" else "api_error"
            frames.append(_sse({"type": "error", "error": {"type": kind, "message": step.message}}))
        elif isinstance(step, Malformed):
            frames.append("event: content_block_delta\ndata: {not json\n\n")
        return frames
    frames.extend(deltas)
    index = 0
    if chunks:
        frames.append(_sse({"type": "content_block_stop", "index": 0}))
        index = 1
    for block in _content(Reply(tool_calls=reply.tool_calls)):
        start = {**block, "input": {}}
        frames.append(_sse({"type": "content_block_start", "index": index, "content_block": start}))
        for piece in split_text(json.dumps(block["input"])):
            delta = {"type": "input_json_delta", "partial_json": piece}
            frames.append(_sse({"type": "content_block_delta", "index": index, "delta": delta}))
        frames.append(_sse({"type": "content_block_stop", "index": index}))
        index += 1
    stop = {"stop_reason": _STOP_REASONS[reply.finish_reason], "stop_sequence": None}
    frames.append(
        _sse(
            {
                "type": "message_delta",
                "delta": stop,
                "usage": {"output_tokens": reply.output_tokens},
            }
        )
    )
    frames.append(_sse({"type": "message_stop"}))
    return frames


async def _paced(frames: list[str], delay_s: float) -> AsyncIterator[str]:
    for i, frame in enumerate(frames):
        if i and delay_s:
            await asyncio.sleep(delay_s)
        yield frame


def make_app(script: Script) -> Starlette:
    """The fake API over ``script``: it answers with its steps and records every request."""

    async def messages(request: Request) -> Response:
        raw = await request.body()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        recorded = _record(request, raw, body)
        script.requests.append(recorded)
        denied = check_headers(request, script)
        if denied is not None:
            return denied
        try:
            check_request(body)
        except Invalid as exc:
            return api_error(400, str(exc))
        step = script.next_step(recorded)
        delay = step.delay_s if isinstance(step, Reply) else 0.0
        if delay:
            await asyncio.sleep(delay)
        if isinstance(step, Fail):
            return failure(step)
        model = str(body["model"])
        if recorded.stream:
            pace = step.chunk_delay_s if isinstance(step, Reply) else 0.0
            frames = _stream_frames(model, step)
            return StreamingResponse(_paced(frames, pace), media_type="text/event-stream")
        if isinstance(step, Malformed):
            return Response("<html>not json</html>", media_type="application/json")
        if not isinstance(step, Reply):  # a stream-only step asked of a plain request
            return api_error(500, "the script's step needs a streaming request")
        stop = _STOP_REASONS[step.finish_reason]
        return JSONResponse(
            _message(
                model, step, content=_content(step), stop=stop, output_tokens=step.output_tokens
            )
        )

    async def models(request: Request) -> Response:
        script.requests.append(_record(request, b"", None))
        denied = check_headers(request, script)
        if denied is not None:
            return denied
        try:
            limit = int(request.query_params.get("limit", "20"))
        except ValueError:
            return api_error(400, "limit: Input should be a valid integer")
        if not 1 <= limit <= MAX_PAGE:
            return api_error(400, f"limit: Input should be between 1 and {MAX_PAGE}")
        ids = list(script.models)
        start = 0
        after = request.query_params.get("after_id")
        if after is not None:
            if after not in ids:
                return api_error(404, f"model: {after}")
            start = ids.index(after) + 1
        page = ids[start : start + limit]
        data = [
            {"type": "model", "id": i, "display_name": i, "created_at": "2025-05-14T00:00:00Z"}
            for i in page
        ]
        return JSONResponse(
            {
                "data": data,
                "has_more": start + limit < len(ids),
                "first_id": page[0] if page else None,
                "last_id": page[-1] if page else None,
            }
        )

    return Starlette(
        routes=[
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )
