"""``POST /api/chat``: one message through the orchestrator, like a chat platform would.

The conversation is ``api:<conversation>`` (default: the user's own), the sender
``api:<user>``: the same access policy, rate limit, screen, history, tools and approvals
as any channel. An ``Idempotency-Key`` header is the platform message id, so a retried
request is recognised and not answered twice (409 ``duplicate_message``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from core.errors import BudgetExceeded, Conflict, PermissionDenied, RateLimited, SwitchboardError
from core.turns import Route
from core.types import ConversationKey, InboundMessage, Sender, TurnResult
from gateway.api.deps import RuntimeDep
from gateway.api.openapi_docs import ERROR_EVENT, TEXT_DELTA_EVENT, sse_events

router = APIRouter(prefix="/api", tags=["chat"])
API_PLATFORM = "api"
_ID = r"^[A-Za-z0-9_.@-]{1,128}$"


class ChatBody(BaseModel):
    """A message to the assistant."""

    model_config = ConfigDict(
        # Strict: "stream": "yes" or "user": 42 is refused, as the schema says, not coerced.
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"message": "What is the disk usage on the server?", "user": "alice"},
                {"message": "And now?", "conversation": "ops-room", "stream": True},
            ]
        },
    )

    message: str = Field(min_length=1, examples=["What is the disk usage on the server?"])
    user: str = Field(default="admin", pattern=_ID, examples=["alice"])
    conversation: str | None = Field(default=None, pattern=_ID, examples=["ops-room"])
    provider: str | None = Field(default=None, max_length=128)
    model: str | None = Field(default=None, max_length=256, examples=["claude/claude-sonnet-4-5"])
    stream: bool = False


class PendingOut(BaseModel):
    """A tool call waiting for a human."""

    id: str
    action_id: str
    tool: str
    level: str
    arguments: dict[str, Any]
    expires_at: str


class ScreenOut(BaseModel):
    """The prompt-injection screen's verdict on the message."""

    verdict: Literal["allow", "flag", "block"]
    score: float
    rules: list[str]


class ChatAnswer(BaseModel):
    """What the message came to."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "answered",
                    "reply": "The root file system is 41% full (12 GB free).",
                    "provider": "claude",
                    "model": "claude-sonnet-4-5",
                    "conversation": "alice",
                    "action_id": "5f0c9a3e8b2d4c61a7e9f0b1c2d3e4f5",
                    "pending_approvals": [],
                    "screen": {"verdict": "allow", "score": 0.0, "rules": []},
                    "usage": {"input_tokens": 52, "output_tokens": 14, "total_tokens": 66},
                }
            ]
        }
    )

    status: str
    reply: str
    provider: str | None
    model: str | None
    conversation: str
    action_id: str | None
    pending_approvals: list[PendingOut]
    screen: ScreenOut | None
    usage: dict[str, int]


class MessageTooLarge(SwitchboardError):
    """The message is over ``[assistant] max_message_chars``."""

    code = "payload_too_large"
    http_status = 413


class ProviderFailed(SwitchboardError):
    """No provider could answer; the message says what to do."""

    code = "provider_unavailable"
    http_status = 503


def answer_json(result: TurnResult) -> dict[str, Any]:
    """The answer body (also the ``done`` event of a stream)."""
    return {
        "status": result.status,
        "reply": result.reply,
        "provider": result.provider,
        "model": result.model,
        "conversation": result.conversation.chat,
        "action_id": result.action_id,
        "pending_approvals": [
            {
                "id": p.id,
                "action_id": p.action_id,
                "tool": p.tool,
                "level": p.level.value,
                "arguments": p.arguments,
                "expires_at": p.expires_at.isoformat(),
            }
            for p in result.pending_approvals
        ],
        "screen": result.screen.model_dump(mode="json") if result.screen else None,
        "usage": {
            "input_tokens": result.usage.input_tokens,
            "output_tokens": result.usage.output_tokens,
            "total_tokens": result.usage.total_tokens,
        },
    }


def raise_for(result: TurnResult) -> None:
    """Statuses that are errors for an API client."""
    if result.status == "denied":
        raise PermissionDenied(result.reply)
    if result.status == "rate_limited":
        raise RateLimited(result.reply, retry_after=result.retry_after_s)
    if result.status == "budget_exceeded":
        raise BudgetExceeded(result.reply, retry_after=result.retry_after_s)
    if result.status == "duplicate":
        raise Conflict("this Idempotency-Key was used before; the message was not handled again")
    if result.status == "too_long":
        raise MessageTooLarge(result.reply)
    if result.status == "failed":
        raise ProviderFailed(result.reply)


def inbound(body: ChatBody, message_id: str) -> InboundMessage:
    """The request as a normalized message of the ``api`` platform."""
    return InboundMessage(
        platform=API_PLATFORM,
        message_id=message_id,
        conversation=ConversationKey(platform=API_PLATFORM, chat=body.conversation or body.user),
        sender=Sender(platform=API_PLATFORM, user_id=body.user),
        text=body.message,
        is_direct=True,
    )


def _sse(event: str, data: Any) -> bytes:
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"event: {event}\ndata: {payload}\n\n".encode()


@router.post(
    "/chat",
    response_model=ChatAnswer,
    summary="A message through the orchestrator",
    responses={
        200: {
            "description": "the answer; with `stream: true`, server-sent events: `delta` "
            "with `{text}`, then `done` with the answer or `error` with `{code, message}` "
            "(a refusal found once the stream started, e.g. a reused Idempotency-Key)",
            "content": sse_events(
                {
                    "delta": TEXT_DELTA_EVENT,
                    "done": {"$ref": "#/components/schemas/ChatAnswer"},
                    "error": ERROR_EVENT,
                }
            ),
        },
        403: {"description": "the access policy refuses the user"},
        404: {"description": "the named provider is not configured"},
        409: {"description": "the Idempotency-Key was used before"},
        413: {"description": "the message is too long"},
        429: {
            "description": "the user's rate limit is exhausted (`rate_limited`), or a "
            "`[budgets]` limit is used up (`budget_exceeded`); `Retry-After` says when to retry"
        },
        503: {"description": "no provider could answer"},
    },
)
async def chat(
    body: ChatBody,
    runtime: RuntimeDep,
    idempotency_key: Annotated[str | None, Header(max_length=256)] = None,
) -> Any:
    """Answer with the reply, or as server-sent events with ``"stream": true``."""
    limit = runtime.config.config.assistant.max_message_chars
    if len(body.message) > limit:
        raise MessageTooLarge(f"message: {len(body.message)} characters, the limit is {limit}")
    if body.provider is not None:
        runtime.manager.spec(body.provider)  # 404 provider_not_found before anything is kept
    message = inbound(body, idempotency_key or uuid.uuid4().hex)
    route = Route(provider=body.provider, model=body.model)
    if body.stream:
        return StreamingResponse(
            _stream(runtime.orchestrator.handle, message, route),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    result = await runtime.orchestrator.handle(message, route=route)
    raise_for(result)
    return answer_json(result)


async def _stream(handle: Any, message: InboundMessage, route: Route) -> AsyncIterator[bytes]:
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    async def on_delta(text: str) -> None:
        await queue.put(text)

    async def run() -> TurnResult:
        try:
            result: TurnResult = await handle(message, route=route, on_delta=on_delta)
            return result
        finally:
            await queue.put(None)

    task = asyncio.create_task(run())  # owned: awaited or cancelled below
    try:
        while (text := await queue.get()) is not None:
            yield _sse("delta", {"text": text})
        try:
            result = await task
            raise_for(result)
        except SwitchboardError as exc:
            yield _sse("error", {"code": exc.code, "message": exc.message})
            return
        yield _sse("done", answer_json(result))
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
