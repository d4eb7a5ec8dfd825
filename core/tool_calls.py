"""A model's tool call becomes an action: requested, maybe approved, run once, screened.

A call at or below ``[security] auto_approve`` runs at once. A riskier call is persisted
with a pending approval, and the conversation gets a placeholder result (``[awaiting
approval ...]``) so its history stays valid for every provider while a human decides;
once decided, the placeholder is replaced by the real result (or by why nothing ran) and
the turn resumes (``core.orchestrator``).

What a tool returns is untrusted: it is screened for prompt injection (``source="tool"``)
before it is stored, withheld when the screen blocks it, and spotlighted when it is sent
to the model.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.errors import ToolError
from core.log_context import log_context
from core.orchestration_parts import OrchestrationParts
from core.security.injection import policy_action
from core.types import (
    Action,
    ActionKind,
    ApprovalStatus,
    ChatMessage,
    ConversationKey,
    PendingApproval,
    Role,
    ToolCall,
    ToolContext,
)

log = logging.getLogger("switchboard.tools")

PLACEHOLDER_PREFIX = "[awaiting approval "
# Screening a long result costs milliseconds; beyond this size it leaves the event loop.
_SCREEN_INLINE_CHARS = 4096


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """The tool message to store for one call, and the approval it waits for, if any."""

    message: ChatMessage
    pending: PendingApproval | None = None


def tool_message(call_id: str, name: str, content: str) -> ChatMessage:
    """The TOOL-role message answering call ``call_id``."""
    return ChatMessage(role=Role.TOOL, content=content, tool_call_id=call_id, name=name)


def placeholder(pending: PendingApproval) -> str:
    """The stand-in result while a human decides."""
    return (
        f"{PLACEHOLDER_PREFIX}{pending.id}] This {pending.level.value}-level call waits for a "
        "human approver; nothing has run yet. Tell the user it needs approval."
    )


def is_placeholder(content: str) -> bool:
    """True for a result that is still waiting for a decision."""
    return content.startswith(PLACEHOLDER_PREFIX)


def not_run_text(status: ApprovalStatus, decided_by: str | None) -> str:
    """The result of a call that was rejected or expired."""
    if status is ApprovalStatus.EXPIRED:
        return "not run: nobody approved this call in time (the approval expired)"
    return f"not run: {decided_by or 'an approver'} rejected this call; do not retry it"


class ToolCalls:
    """Requests, runs and screens tool calls for the orchestrator."""

    def __init__(self, parts: OrchestrationParts) -> None:
        self._parts = parts

    async def request(
        self, call: ToolCall, *, key: ConversationKey, requester: str, chat_action_id: str
    ) -> ToolOutcome:
        """Persist the call as an action; run it now when its level is auto-approved."""
        registry = self._parts.tools()
        try:
            level = registry.level_of(call.name)
            arguments = registry.validate(call.name, call.arguments)
        except ToolError as exc:
            return ToolOutcome(tool_message(call.id, call.name, f"error: {exc.message}"))
        payload: dict[str, Any] = {
            "tool": call.name,
            "arguments": arguments,
            "conversation": str(key),
            "requester": requester,
            "tool_call_id": call.id,
            "chat_action_id": chat_action_id,
        }
        requested = await self._parts.approvals.request(
            kind=ActionKind.TOOL_CALL,
            level=level,
            payload=payload,
            conversation=key,
            requester=requester,
        )
        approval = requested.approval
        if approval is None:
            text = await self.execute(requested.action.id)
            return ToolOutcome(tool_message(call.id, call.name, text or "error: did not run"))
        with log_context(action_id=approval.action_id):
            log.info(
                "event=approval_asked tool=%s level=%s approval=%s",
                call.name,
                level.value,
                approval.id,
            )
        pending = PendingApproval(
            id=approval.id,
            action_id=approval.action_id,
            tool=call.name,
            level=level,
            arguments=arguments,
            expires_at=approval.expires_at,
        )
        await self._parts.audit.append(
            "approval.asked",
            actor=requester,
            conversation=str(key),
            action_id=approval.action_id,
            data={"approval_id": approval.id, "tool": call.name, "level": level.value},
        )
        return ToolOutcome(tool_message(call.id, call.name, placeholder(pending)), pending)

    async def execute(self, action_id: str) -> str | None:
        """Claim an approved action and run it: its screened result, or None if not ours.

        None means another caller (a concurrent click, another replica) claimed it, or it
        is no longer approved: it runs at most once.
        """
        with log_context(action_id=action_id):
            claimed = await self._parts.approvals.claim(action_id)
            if claimed is None:
                return None
            action = claimed.action
            if action.conversation is None:
                await self._parts.approvals.finish(action_id, error="no conversation")
                return "error: the action has no conversation"
            with log_context(conversation=action.conversation):
                return await self._run(action, action.conversation)

    async def _run(self, action: Action, key: ConversationKey) -> str:
        action_id, payload = action.id, action.payload
        name = str(payload.get("tool", ""))
        context = ToolContext(
            conversation=key, requester=action.requester or "", action_id=action_id
        )
        try:
            result = await self._parts.tools().run(
                name, payload.get("arguments", {}), context=context
            )
        except ToolError as exc:
            log.info("event=tool_refused tool=%s problem=%r", name, exc.message)
            await self._parts.approvals.finish(action_id, error=exc.message)
            return f"error: {exc.message}"
        except Exception as exc:  # a broken tool must not take the conversation down with it
            log.exception("event=tool_crashed tool=%s action=%s", name, action_id)
            await self._parts.approvals.finish(action_id, error=f"{type(exc).__name__}: {exc}")
            return f"error: the {name} tool failed unexpectedly ({type(exc).__name__})"
        log.info("event=tool_ran tool=%s result_chars=%d", name, len(result))
        await self._parts.approvals.finish(action_id, result=result)
        return await self.screened(result, tool=name, action_id=action_id, key=key)

    async def screened(self, text: str, *, tool: str, action_id: str, key: ConversationKey) -> str:
        """The result as it may go back to the model: withheld if the screen blocks it."""
        defender = self._parts.defender()
        if len(text) > _SCREEN_INLINE_CHARS:
            verdict = await asyncio.to_thread(defender.screen, text, source="tool")
        else:
            verdict = defender.screen(text, source="tool")
        if verdict.verdict == "allow":
            return text
        settings = self._parts.config().security.injection
        decision = policy_action(verdict, on_flag=settings.on_flag, on_block=settings.on_block)
        await self._parts.audit.append(
            "tool.screened",
            conversation=str(key),
            action_id=action_id,
            data={
                "tool": tool,
                "verdict": verdict.verdict,
                "score": round(verdict.score, 3),
                "rules": list(verdict.rules),
                "decision": decision,
            },
        )
        if decision == "block":
            rules = ", ".join(verdict.rules[:5])
            return (
                f"[result withheld: the {tool} output looked like a prompt injection "
                f"({rules}); tell the user it could not be used]"
            )
        return text


def call_of(payload: Mapping[str, Any]) -> tuple[str, str]:
    """(tool_call_id, tool name) of a TOOL_CALL action's payload."""
    return str(payload.get("tool_call_id", "")), str(payload.get("tool", ""))
