"""``POST /api/chat/multi``: a conversation straight to the provider manager.

No orchestrator in between (no history, tools or approvals): the caller sends the whole
conversation and gets the model's answer, or server-sent events with ``"stream": true``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from core.types import (
    ChatMessage,
    ChatRequest,
    ChatResult,
    Role,
    StreamDone,
    StreamEvent,
    StreamFailed,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    ToolSpec,
    Usage,
)
from gateway.api.deps import runtime_of
from gateway.api.fast_body import COMPONENTS_KEY, parse_body, request_body_schema
from gateway.api.openapi_docs import TEXT_DELTA_EVENT, sse_events

router = APIRouter(prefix="/api/chat", tags=["chat"])


def _integral(value: Any) -> Any:
    """``5.0`` as ``5``: JSON Schema counts it as an integer, strict validation would not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Field before the validator: the other order drops the bounds from the JSON schema.
MaxTokens = Annotated[int, Field(ge=1, le=1_000_000), BeforeValidator(_integral)]


class ToolCallIn(BaseModel):
    """A tool call the model made earlier in the conversation."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: str = Field(max_length=256)
    name: str = Field(max_length=256)
    arguments: dict[str, Any] = Field(default_factory=dict)


class MessageIn(BaseModel):
    """One message: system, user, assistant (maybe with tool calls) or a tool result."""

    model_config = ConfigDict(extra="forbid", strict=True)

    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = ""
    tool_calls: list[ToolCallIn] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None


class ToolIn(BaseModel):
    """A tool the model may call: name, description, JSON schema of its arguments."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(max_length=64)
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})


class ChatMultiBody(BaseModel):
    """A whole conversation for one provider (or the default and its fallbacks)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "messages": [
                        {"role": "system", "content": "Answer in one sentence."},
                        {"role": "user", "content": "What is the capital of France?"},
                    ],
                    "model": "claude/claude-sonnet-4-5",
                    "max_tokens": 100,
                }
            ]
        },
    )

    messages: list[MessageIn] = Field(min_length=1, max_length=1000)
    provider: str | None = None
    model: str | None = Field(default=None, examples=["claude/claude-sonnet-4-5"])
    tools: list[ToolIn] = Field(default_factory=list)
    stream: bool = False
    max_tokens: MaxTokens | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)


class UsageOut(BaseModel):
    """Token counts."""

    input_tokens: int
    output_tokens: int
    total_tokens: int


class ChatMultiAnswer(BaseModel):
    """The answer, and who gave it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "content": "Paris.",
                    "tool_calls": [],
                    "provider": "claude",
                    "model": "claude-sonnet-4-5",
                    "finish_reason": "stop",
                    "usage": {"input_tokens": 21, "output_tokens": 3, "total_tokens": 24},
                }
            ]
        }
    )

    content: str
    tool_calls: list[ToolCallIn]
    provider: str
    model: str
    finish_reason: Literal["stop", "length", "tool_calls", "content_filter", "error"]
    usage: UsageOut


class StreamDoneOut(BaseModel):
    """The last event of a stream that ended well."""

    provider: str
    model: str
    finish_reason: Literal["stop", "length", "tool_calls", "content_filter", "error"]
    usage: UsageOut


class StreamErrorOut(BaseModel):
    """The last event of a stream that failed after it started."""

    code: str
    message: str
    provider: str


def _openapi_extra() -> dict[str, Any]:
    """The body, plus the event schemas the stream's documentation refers to."""
    extra = request_body_schema(ChatMultiBody)
    for model in (StreamDoneOut, StreamErrorOut):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        extra[COMPONENTS_KEY].update(schema.pop("$defs", {}))
        extra[COMPONENTS_KEY][model.__name__] = schema
    return extra


def to_chat_request(body: ChatMultiBody) -> ChatRequest:
    """The API body in the normalized conversation model.

    Plain constructors, not ``model_construct``: with this pydantic the validating
    constructor of these small frozen models is twice as fast (measured: 14 against 29 us
    for a one-message request), and this runs on every request.
    """
    return ChatRequest(
        messages=tuple(
            ChatMessage(
                role=Role(m.role),
                content=m.content or "",
                tool_calls=tuple(
                    ToolCall(id=c.id, name=c.name, arguments=c.arguments) for c in m.tool_calls
                ),
                tool_call_id=m.tool_call_id,
                name=m.name,
            )
            for m in body.messages
        ),
        model=body.model,
        tools=tuple(
            ToolSpec(name=t.name, description=t.description, parameters=t.parameters)
            for t in body.tools
        ),
        max_tokens=body.max_tokens,
        temperature=body.temperature,
    )


def _usage(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def answer_json(result: ChatResult) -> dict[str, Any]:
    """The non-streaming answer."""
    return {
        "content": result.content,
        "tool_calls": [c.model_dump() for c in result.tool_calls],
        "provider": result.provider,
        "model": result.model,
        "finish_reason": result.finish_reason,
        "usage": _usage(result.usage),
    }


def sse_event(event: StreamEvent) -> bytes:
    """One normalized event as a server-sent event."""
    if isinstance(event, TextDelta):
        return b"event: delta\ndata: " + _dumps({"text": event.text}) + b"\n\n"
    if isinstance(event, ToolCallEvent):
        return b"event: tool_call\ndata: " + _dumps(event.tool_call.model_dump()) + b"\n\n"
    if isinstance(event, StreamDone):
        done = {
            "provider": event.provider,
            "model": event.model,
            "finish_reason": event.finish_reason,
            "usage": _usage(event.usage),
        }
        return b"event: done\ndata: " + _dumps(done) + b"\n\n"
    failed: StreamFailed = event
    error = {"code": failed.code, "message": failed.message, "provider": failed.provider}
    return b"event: error\ndata: " + _dumps(error) + b"\n\n"


async def _sse(first: StreamEvent, events: AsyncIterator[StreamEvent]) -> AsyncIterator[bytes]:
    try:
        yield sse_event(first)
        async for event in events:
            yield sse_event(event)
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


@router.post(
    "/multi",
    response_model=ChatMultiAnswer,
    summary="A conversation straight to the provider manager",
    openapi_extra=_openapi_extra(),
    responses={
        200: {
            "content": sse_events(
                {
                    "delta": TEXT_DELTA_EVENT,
                    "tool_call": {"$ref": "#/components/schemas/ToolCallIn"},
                    "done": {"$ref": "#/components/schemas/StreamDoneOut"},
                    "error": {"$ref": "#/components/schemas/StreamErrorOut"},
                }
            ),
            "description": "the answer, or with `stream: true` its server-sent events: "
            "`delta` and `tool_call` events, then one `done` or `error`",
        },
        404: {"description": "provider_not_found"},
        429: {"description": "the provider's rate limit, after retries"},
        502: {"description": "the provider failed and no fallback answered"},
        503: {"description": "every provider is unavailable (or its circuit open)"},
        504: {"description": "the provider did not answer in time"},
    },
)
async def chat_multi(request: Request) -> Response:
    """``"stream": true`` answers ``event: delta`` / ``tool_call`` then ``done`` or ``error``.

    Errors before the first event (every fallback failed) answer a JSON error with a
    fitting status; a failure after text was streamed ends the stream with ``event: error``.
    """
    body = await parse_body(request, ChatMultiBody)
    chat_request = to_chat_request(body)
    manager = runtime_of(request).manager
    if not body.stream:
        result = await manager.chat(chat_request, provider=body.provider)
        return Response(_dumps(answer_json(result)), media_type="application/json")
    events = manager.stream(chat_request, provider=body.provider)
    first = await anext(events)
    return StreamingResponse(
        _sse(first, events),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
