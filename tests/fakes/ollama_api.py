"""A loopback fake of Ollama's native API: ``POST /api/chat`` and ``GET /api/tags``.

It speaks the real wire format: one JSON object for ``"stream": false``, NDJSON
(``application/x-ndjson``, one object per line, the last with ``"done": true``) otherwise,
which is also what Ollama does when ``stream`` is left out. Errors are ``{"error": "..."}``
bodies, or an ``{"error": ...}`` line once a stream has started.

Ollama has no authentication. Requests without ``Authorization`` are served; one that
carries a header other than ``Bearer <script.api_key>`` gets 401, like the authenticating
reverse proxy an operator may put in front of it.

Every NDJSON line is written in two pieces (split at its middle byte), or in pieces of
``piece_bytes`` bytes, so a client that assumes one network read per line (or whole UTF-8
characters per read) breaks here as it would on a real network; ``piece_delay_s`` pauses
between the pieces to force them into separate reads.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.llm_script import (
    CutStream,
    Fail,
    FakeToolCall,
    Malformed,
    RecordedRequest,
    Reply,
    Script,
    StreamError,
    split_text,
)

CREATED_AT = "2026-11-24T12:00:00.000000Z"
# The scheduler's error when OLLAMA_MAX_QUEUE is full (server/sched.go), with its two spaces.
BUSY_MESSAGE = "server busy, please try again.  maximum pending requests exceeded"
# What Ollama answers when a prompt does not fit and it is told not to truncate.
CONTEXT_MESSAGE = "the input length exceeds the context length"
NOT_JSON = "<html><body>502 Bad Gateway</body></html>"


def _error(status: int, message: str, retry_after: float | None = None) -> JSONResponse:
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _with_tag(model: str) -> str:
    return model if ":" in model.rsplit("/", 1)[-1] else model + ":latest"


def _normalized(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    pairs = []
    for message in messages:
        role, content = message.get("role", ""), message.get("content") or ""
        if role == "tool":
            ref = message.get("tool_call_id") or message.get("tool_name")
            pairs.append((role, f"{ref}={content}"))
            continue
        parts = [content] if content else []
        for call in message.get("tool_calls") or []:
            function = call.get("function", {})
            parts.append(f"call {function.get('name')}({json.dumps(function.get('arguments'))})")
        pairs.append((role, "\n".join(parts)))
    return pairs


def _invalid(body: dict[str, Any], known_models: list[str]) -> JSONResponse | None:
    """The error Ollama gives for this body, or None when it would accept it."""
    model = body.get("model")
    if not model:
        return _error(400, "model is required")
    if _with_tag(model) not in {_with_tag(name) for name in known_models}:
        return _error(404, f"model '{model}' not found")
    if not isinstance(body.get("messages", []), list):
        return _error(400, "json: cannot unmarshal into Go struct field ChatRequest.messages")
    for message in body.get("messages", []):
        for call in message.get("tool_calls") or []:
            if not isinstance(call.get("function", {}).get("arguments"), dict):
                return _error(
                    400,
                    "json: cannot unmarshal string into Go struct field "
                    "ToolCallFunction.messages.tool_calls.function.arguments "
                    "of type api.ToolCallFunctionArguments",
                )
    for tool in body.get("tools") or []:
        if tool.get("type") != "function" or not tool.get("function", {}).get("name"):
            return _error(400, "invalid tool definition")
    options = body.get("options") or {}
    if "num_predict" in options and not isinstance(options["num_predict"], int):
        return _error(400, 'option "num_predict" must be of type integer')
    if "temperature" in options and not isinstance(options["temperature"], int | float):
        return _error(400, 'option "temperature" must be of type float32')
    return None


def _line(value: Any) -> str:
    # Ollama writes UTF-8 as is, so a line split between reads can split a character.
    return json.dumps(value, ensure_ascii=False)


def _tool_calls(calls: tuple[FakeToolCall, ...]) -> list[dict[str, Any]]:
    # Most Ollama versions send no id; a scripted id stands for the versions that do.
    rendered = []
    for index, call in enumerate(calls):
        item: dict[str, Any] = {
            "function": {"index": index, "name": call.name, "arguments": call.arguments}
        }
        if call.id is not None:
            item["id"] = call.id
        rendered.append(item)
    return rendered


def _chunk(model: str, content: str = "", **extra: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if "tool_calls" in extra:
        message["tool_calls"] = extra.pop("tool_calls")
    return {"model": model, "created_at": CREATED_AT, "message": message, "done": False, **extra}


def _final(model: str, reply: Reply) -> dict[str, Any]:
    return _chunk(
        model,
        done=True,
        done_reason="length" if reply.finish == "length" else "stop",
        total_duration=1_000_000,
        load_duration=100_000,
        prompt_eval_count=reply.input_tokens,
        prompt_eval_duration=200_000,
        eval_count=reply.output_tokens,
        eval_duration=700_000,
    )


def _whole_answer(model: str, reply: Reply) -> dict[str, Any]:
    answer = _final(model, reply)
    answer["message"]["content"] = reply.text
    if reply.tool_calls:
        answer["message"]["tool_calls"] = _tool_calls(reply.tool_calls)
    return answer


def _stream_lines(model: str, step: Reply | CutStream | StreamError | Malformed) -> list[str]:
    """The NDJSON lines of a streamed step, in order."""
    reply = step if isinstance(step, Reply) else getattr(step, "reply", Reply(text="a b c"))
    lines = [_line(_chunk(model, piece)) for piece in split_text(reply.text)]
    if isinstance(step, Reply):
        if step.tool_calls:
            lines.append(_line(_chunk(model, tool_calls=_tool_calls(step.tool_calls))))
        return [*lines, _line(_final(model, step))]
    lines = lines[: step.after_chunks]
    if isinstance(step, StreamError):
        message = BUSY_MESSAGE if step.kind == "overloaded" else step.message
        lines.append(_line({"error": message}))
    elif isinstance(step, Malformed):
        lines.append(NOT_JSON)
    return lines


def make_app(
    script: Script, *, piece_bytes: int | None = None, piece_delay_s: float = 0.0
) -> Starlette:
    """The fake Ollama serving ``script``."""

    def unauthorized(request: Request) -> JSONResponse | None:
        given = request.headers.get("authorization")
        if given is not None and given != f"Bearer {script.api_key}":
            return _error(401, "unauthorized")
        return None

    async def write_lines(lines: list[str], chunk_delay_s: float) -> AsyncIterator[bytes]:
        for number, line in enumerate(lines):
            if number and chunk_delay_s:
                await asyncio.sleep(chunk_delay_s)
            data = (line + "\n").encode()
            size = piece_bytes or -(-len(data) // 2)
            for start in range(0, len(data), size):
                if start and piece_delay_s:
                    await asyncio.sleep(piece_delay_s)
                yield data[start : start + size]

    async def chat(request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = None
        recorded = RecordedRequest(
            method=request.method,
            path=request.url.path,
            headers=dict(request.headers),
            body=body if body is not None else raw.decode(errors="replace"),
        )
        script.requests.append(recorded)
        if (denied := unauthorized(request)) is not None:
            return denied
        if not isinstance(body, dict):
            return _error(400, "missing request body" if not raw else "invalid JSON body")
        recorded.model = body.get("model") or ""
        recorded.stream = body.get("stream", True) is not False
        recorded.messages = _normalized(body.get("messages") or [])
        recorded.tools = [t.get("function", {}).get("name") for t in body.get("tools") or []]
        recorded.max_tokens = (body.get("options") or {}).get("num_predict")
        if (invalid := _invalid(body, script.models)) is not None:
            return invalid

        step = script.next_step(recorded)
        if isinstance(step, Fail):
            if step.raw_body is not None:
                return Response(step.raw_body, status_code=step.status)
            if step.kind == "overloaded":
                return _error(503, BUSY_MESSAGE, step.retry_after)
            if step.kind == "context":
                return _error(400, CONTEXT_MESSAGE, step.retry_after)
            return _error(step.status, step.message, step.retry_after)
        reply = step if isinstance(step, Reply) else getattr(step, "reply", None)
        if reply is not None and reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if not recorded.stream:
            if isinstance(step, Reply):
                return JSONResponse(_whole_answer(recorded.model, step))
            if isinstance(step, StreamError):
                return _error(500, step.message)
            return Response(NOT_JSON, media_type="text/html")
        return StreamingResponse(
            write_lines(_stream_lines(recorded.model, step), reply.chunk_delay_s if reply else 0.0),
            media_type="application/x-ndjson",
        )

    async def tags(request: Request) -> Response:
        script.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.url.path,
                headers=dict(request.headers),
                body=None,
            )
        )
        if (denied := unauthorized(request)) is not None:
            return denied
        models = [
            {
                "name": name,
                "model": name,
                "modified_at": CREATED_AT,
                "size": 2_019_393_189,
                "digest": hashlib.sha256(name.encode()).hexdigest(),
                "details": {"format": "gguf", "family": "llama", "parameter_size": "3.2B"},
            }
            for name in script.models
        ]
        return JSONResponse({"models": models})

    return Starlette(
        routes=[
            Route("/api/chat", chat, methods=["POST"]),
            Route("/api/tags", tags, methods=["GET"]),
        ]
    )
