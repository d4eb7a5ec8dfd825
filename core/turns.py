"""One turn of a conversation: ask the model, run its tool calls, ask again, bounded.

A turn belongs to a CHAT action that is ``running`` while the turn runs. Each round sends
the system prompt and the history (trimmed to ``[assistant] history_tokens``) with the
tools the policy allows; tool calls become actions (``core.tool_calls``) whose results go
back to the model in the next round. After ``max_tool_rounds`` rounds the model is asked
once more without tools, so a turn always ends with text. When a call needs a human, the
turn is parked (its CHAT action ``pending_approval``) and the reply lists the approvals;
``core.orchestrator`` resumes it once they are decided.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from core.errors import ContextTooLong, ProviderError, ProviderNotFound
from core.log_context import log_context
from core.orchestration_parts import OrchestrationParts
from core.security.injection import SPOTLIGHT_INSTRUCTION
from core.tool_calls import ToolCalls
from core.types import (
    ChatMessage,
    ChatRequest,
    ChatResult,
    ConversationKey,
    PendingApproval,
    Role,
    ScreenVerdict,
    StreamDone,
    StreamFailed,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    TurnResult,
    Usage,
)

log = logging.getLogger("switchboard.orchestrator")

DeltaHandler = Callable[[str], Awaitable[None]]
_MIN_BUDGET = 256
_RESULT_CHARS = 4000  # of the reply kept on the CHAT action (the history has all of it)


@dataclass(frozen=True, slots=True)
class Route:
    """Which provider and model a turn asks; None: the default (with fallbacks)."""

    provider: str | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class Turn:
    """Who and what a turn is for."""

    key: ConversationKey
    requester: str
    chat_action_id: str
    route: Route
    tools_allowed: bool = True
    screen: ScreenVerdict | None = None
    in_reply_to: str | None = None


class _StreamBroke(Exception):
    """A stream ended with an error event after text had been shown."""

    def __init__(self, failed: StreamFailed, partial: str) -> None:
        super().__init__(failed.message)
        self.failed = failed
        self.partial = partial


def add_usage(total: Usage, more: Usage) -> Usage:
    """The sum of two usage reports."""
    return Usage(
        input_tokens=total.input_tokens + more.input_tokens,
        output_tokens=total.output_tokens + more.output_tokens,
    )


def provider_failure_text(exc: ProviderError | ProviderNotFound) -> str:
    """What the user reads when no provider could answer, with what to do next."""
    if isinstance(exc, ProviderNotFound):
        return f"{exc.message}. Send /provider to see the configured providers."
    return (
        f"Sorry, no model could answer right now ({exc.code}: {exc.message}). "
        "Try again in a minute; /status shows each provider's health."
    )


def approval_request_text(content: str, pending: list[PendingApproval]) -> str:
    """The reply of a parked turn: the model's words, then what waits for whom."""
    lines = [content.strip()] if content.strip() else []
    for item in pending:
        arguments = ", ".join(f"{k}={v!r}" for k, v in item.arguments.items())
        lines.append(
            f"Approval needed ({item.level.value}): {item.tool}({arguments}). "
            f"An approver can answer /approve {item.id} or /reject {item.id}."
        )
    return "\n\n".join(lines)


class TurnEngine:
    """Runs the rounds of a turn for the orchestrator."""

    def __init__(self, parts: OrchestrationParts, tool_calls: ToolCalls) -> None:
        self._parts = parts
        self._tools = tool_calls

    async def run(self, turn: Turn, *, on_delta: DeltaHandler | None = None) -> TurnResult:
        """Ask, run tools, ask again until the model answers or a call waits for a human."""
        with log_context(conversation=turn.key, action_id=turn.chat_action_id):
            return await self._rounds(turn, on_delta)

    async def _rounds(self, turn: Turn, on_delta: DeltaHandler | None) -> TurnResult:
        assistant = self._parts.config().assistant
        usage = Usage()
        rounds = 0
        budget = assistant.history_tokens
        while True:
            offer_tools = turn.tools_allowed and rounds < assistant.max_tool_rounds
            request = await self._request(turn, budget=budget, offer_tools=offer_tools)
            try:
                result = await self._ask(request, turn.route, on_delta)
            except ContextTooLong as exc:
                if budget > _MIN_BUDGET:
                    budget //= 2  # the estimate was too generous for this model: try smaller
                    continue
                text = (
                    "This conversation no longer fits the model's context. "
                    "Send /reset to start over, or a shorter message."
                )
                return await self._failed(turn, text, exc.code, usage)
            except (ProviderError, ProviderNotFound) as exc:
                return await self._failed(turn, provider_failure_text(exc), exc.code, usage)
            except _StreamBroke as broke:
                text = f"{broke.partial}\n\n[the answer was cut off: {broke.failed.message}]"
                return await self._failed(turn, text.strip(), broke.failed.code, usage)
            usage = add_usage(usage, result.usage)
            await self._record(turn, result)
            calls = result.tool_calls if offer_tools else ()
            assistant_message = ChatMessage(
                role=Role.ASSISTANT, content=result.content, tool_calls=calls
            )
            await self._append(turn, [assistant_message])
            if not calls:
                return await self._answered(turn, result, usage, rounds)
            pending = await self._run_calls(turn, calls)
            if pending:
                return await self._park(turn, result, pending, usage)
            rounds += 1

    async def _request(self, turn: Turn, *, budget: int, offer_tools: bool) -> ChatRequest:
        config = self._parts.config()
        history = await self._parts.conversations.history(turn.key, budget=budget)
        defender = self._parts.defender()
        system = f"{config.assistant.system_prompt}\n\n{SPOTLIGHT_INSTRUCTION}"
        messages = [ChatMessage(role=Role.SYSTEM, content=system)]
        for message in history:
            if message.role is Role.TOOL:
                source = f"tool:{message.name or 'unknown'}"
                message = message.model_copy(
                    update={"content": defender.spotlight(message.content, source=source)}
                )
            messages.append(message)
        return ChatRequest(
            messages=tuple(messages),
            model=turn.route.model,
            tools=self._parts.tools().specs() if offer_tools else (),
            max_tokens=config.assistant.max_reply_tokens,
        )

    async def _ask(
        self, request: ChatRequest, route: Route, on_delta: DeltaHandler | None
    ) -> ChatResult:
        manager = self._parts.manager()
        if on_delta is None:
            return await manager.chat(request, provider=route.provider)
        text: list[str] = []
        calls: list[ToolCall] = []
        async for event in manager.stream(request, provider=route.provider):
            if isinstance(event, TextDelta):
                text.append(event.text)
                await on_delta(event.text)
            elif isinstance(event, ToolCallEvent):
                calls.append(event.tool_call)
            elif isinstance(event, StreamDone):
                return ChatResult(
                    content="".join(text),
                    tool_calls=tuple(calls),
                    provider=event.provider,
                    model=event.model,
                    finish_reason=event.finish_reason,
                    usage=event.usage,
                )
            elif isinstance(event, StreamFailed):
                raise _StreamBroke(event, "".join(text))
        raise _StreamBroke(
            StreamFailed(code="stream_broken", message="no end event", provider="unknown"),
            "".join(text),
        )

    async def _record(self, turn: Turn, result: ChatResult) -> None:
        budgets = self._parts.budgets
        if budgets is not None:
            await budgets.record(
                user=turn.requester,
                conversation=turn.key,
                provider=result.provider,
                model=result.model,
                usage=result.usage,
            )

    async def _run_calls(self, turn: Turn, calls: tuple[ToolCall, ...]) -> list[PendingApproval]:
        outcomes = [
            await self._tools.request(
                call, key=turn.key, requester=turn.requester, chat_action_id=turn.chat_action_id
            )
            for call in calls
        ]
        await self._append(turn, [o.message for o in outcomes])
        return [o.pending for o in outcomes if o.pending is not None]

    async def _append(self, turn: Turn, messages: list[ChatMessage]) -> None:
        await self._parts.conversations.append(
            turn.key, messages, action_id=turn.chat_action_id, now=self._parts.clock()
        )

    async def _answered(
        self, turn: Turn, result: ChatResult, usage: Usage, rounds: int
    ) -> TurnResult:
        await self._parts.approvals.finish(
            turn.chat_action_id, result=result.content[:_RESULT_CHARS]
        )
        log.info(
            "event=chat_answered provider=%s model=%s finish=%s tool_rounds=%d "
            "input_tokens=%d output_tokens=%d",
            result.provider,
            result.model,
            result.finish_reason,
            rounds,
            usage.input_tokens,
            usage.output_tokens,
        )
        await self._parts.audit.append(
            "chat.answered",
            actor=turn.requester,
            conversation=str(turn.key),
            action_id=turn.chat_action_id,
            data={
                "provider": result.provider,
                "model": result.model,
                "finish_reason": result.finish_reason,
                "usage": usage.model_dump(),
                "tool_rounds": rounds,
                "chars": len(result.content),
            },
        )
        return TurnResult(
            status="answered",
            conversation=turn.key,
            reply=result.content,
            in_reply_to=turn.in_reply_to,
            provider=result.provider,
            model=result.model,
            action_id=turn.chat_action_id,
            screen=turn.screen,
            usage=usage,
            finish_reason=result.finish_reason,
        )

    async def _park(
        self, turn: Turn, result: ChatResult, pending: list[PendingApproval], usage: Usage
    ) -> TurnResult:
        await self._parts.approvals.park(turn.chat_action_id)
        log.info("event=chat_waiting approvals=%d", len(pending))
        return TurnResult(
            status="awaiting_approval",
            conversation=turn.key,
            reply=approval_request_text(result.content, pending),
            model_text=result.content,
            in_reply_to=turn.in_reply_to,
            provider=result.provider,
            model=result.model,
            action_id=turn.chat_action_id,
            pending_approvals=tuple(pending),
            screen=turn.screen,
            usage=usage,
            finish_reason="tool_calls",
        )

    async def _failed(self, turn: Turn, text: str, code: str, usage: Usage) -> TurnResult:
        log.warning(
            "event=turn_failed conversation=%s action=%s code=%s",
            turn.key,
            turn.chat_action_id,
            code,
        )
        await self._parts.approvals.finish(turn.chat_action_id, error=f"{code}: {text}"[:500])
        await self._parts.audit.append(
            "chat.failed",
            actor=turn.requester,
            conversation=str(turn.key),
            action_id=turn.chat_action_id,
            data={"code": code},
        )
        return TurnResult(
            status="failed",
            conversation=turn.key,
            reply=text,
            in_reply_to=turn.in_reply_to,
            action_id=turn.chat_action_id,
            screen=turn.screen,
            usage=usage,
            finish_reason="error",
        )
