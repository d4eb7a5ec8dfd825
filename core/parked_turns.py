"""Turns parked on approvals: settled after each decision, swept for the rest.

``settle(approval)`` runs (or does not run) the decided call, records its result in place
of the placeholder and resumes the turn once every call of it is decided. ``sweep()`` is
the periodic pass that makes this happen whatever process recorded the decision: it
expires overdue approvals, runs actions approved elsewhere (the CLI, another replica) and
resumes every parked turn whose calls are all decided, filling in results a crash left
unrecorded. Claiming an action and resuming a turn are conditional updates, so running
both in every process at once still runs each action and resumes each turn once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from core.conversations import HISTORY_ROWS
from core.keyed_locks import KeyedLocks
from core.orchestration_parts import OrchestrationParts
from core.storage.action_repo import StoredAction
from core.tool_calls import ToolCalls, call_of, is_placeholder, not_run_text
from core.turns import Route, Turn, TurnEngine
from core.types import (
    ActionKind,
    ActionStatus,
    Approval,
    ApprovalStatus,
    ChatMessage,
    ConversationKey,
    Role,
    TurnResult,
)

Deliver = Callable[[TurnResult], Awaitable[None]]
Notify = Callable[[Approval, ConversationKey], Awaitable[None]]

OPEN_STATES = frozenset(
    {
        ActionStatus.REQUESTED,
        ActionStatus.PENDING_APPROVAL,
        ActionStatus.APPROVED,
        ActionStatus.RUNNING,
    }
)
RESUME_NOTE = (
    "[gateway] The approvals asked for earlier were decided; each tool result above says "
    "what happened. Tell the user the outcome."
)


class ParkedTurns:
    """Decisions in, resumed turns out."""

    def __init__(
        self,
        parts: OrchestrationParts,
        *,
        tools: ToolCalls,
        engine: TurnEngine,
        locks: KeyedLocks,
        deliver: Deliver,
        notify: Notify,
    ) -> None:
        self._parts = parts
        self._tools = tools
        self._engine = engine
        self._locks = locks
        self._deliver = deliver
        self._notify = notify

    async def settle(self, approval: Approval, *, deliver: bool = True) -> TurnResult | None:
        """After a decision: run (or not) the call, record its result, resume the turn.

        Returns the resumed turn's result (also delivered to the platform's sink unless
        ``deliver`` is false), or None when the turn still waits or was resumed elsewhere.
        """
        stored = await self._parts.approvals.get_action(approval.action_id)
        action = stored.action
        if action.kind is not ActionKind.TOOL_CALL or action.conversation is None:
            return None
        if approval.status is not ApprovalStatus.PENDING and (
            approval.status is not ApprovalStatus.APPROVED or action.status is ActionStatus.APPROVED
        ):
            # Shown before the action runs (it may take a while); a second settle of the
            # same decision at most repeats the same edit.
            await self._notify(approval, action.conversation)
        if approval.status is ApprovalStatus.APPROVED:
            text = await self._tools.execute(action.id)
            if text is not None:
                await self._record(action.conversation, stored, text)
        elif approval.status in (ApprovalStatus.REJECTED, ApprovalStatus.EXPIRED):
            await self._record(
                action.conversation, stored, not_run_text(approval.status, approval.decided_by)
            )
        else:
            return None
        chat_id = str(action.payload.get("chat_action_id", ""))
        return await self._resume_if_ready(chat_id, action.conversation, deliver=deliver)

    async def _record(self, key: ConversationKey, stored: StoredAction, text: str) -> None:
        call_id, _ = call_of(stored.action.payload)
        await self._parts.conversations.record_tool_result(
            key, tool_call_id=call_id, content=text, now=self._parts.clock()
        )

    async def _resume_if_ready(
        self, chat_id: str, key: ConversationKey, *, deliver: bool
    ) -> TurnResult | None:
        approvals = self._parts.approvals
        chat = await approvals.get_action(chat_id)
        if chat.action.status is not ActionStatus.PENDING_APPROVAL:
            return None
        calls = [
            s
            for s in await approvals.list_actions(
                statuses=[], levels=[], conversation=key, limit=HISTORY_ROWS
            )
            if s.action.kind is ActionKind.TOOL_CALL
            and s.action.payload.get("chat_action_id") == chat_id
        ]
        if not calls or any(s.action.status in OPEN_STATES for s in calls):
            return None
        history = await self._parts.conversations.repo.recent(key, limit=HISTORY_ROWS)
        results = {
            m.message.tool_call_id: m.message.content
            for m in history
            if m.message.role is Role.TOOL and m.message.tool_call_id
        }
        for stored in calls:
            call_id, _ = call_of(stored.action.payload)
            if is_placeholder(results.get(call_id, "")):
                # Decided and finished, but the result never reached the history (the
                # process died in between): write it now from the action's record.
                await self._record(key, stored, await self._result_of(stored))
        if not await approvals.resume(chat_id):
            return None
        payload = chat.action.payload
        turn = Turn(
            key=key,
            requester=chat.action.requester or "",
            chat_action_id=chat_id,
            route=Route(provider=payload.get("provider"), model=payload.get("model")),
            tools_allowed=bool(payload.get("tools_allowed", True)),
        )
        async with self._locks.hold(str(key)):
            if not any(call_of(s.action.payload)[0] in results for s in calls):
                await approvals.finish(chat_id, error="the conversation was reset meanwhile")
                return None
            latest = await self._parts.conversations.repo.recent(key, limit=1)
            if latest and latest[-1].message.role is not Role.TOOL:
                await self._parts.conversations.append(
                    key,
                    [ChatMessage(role=Role.USER, content=RESUME_NOTE)],
                    action_id=chat_id,
                    now=self._parts.clock(),
                )
            result = await self._engine.run(turn)
        if deliver:
            await self._deliver(result)
        return result

    async def _result_of(self, stored: StoredAction) -> str:
        action = stored.action
        if action.status is ActionStatus.SUCCEEDED and action.conversation is not None:
            _, tool = call_of(action.payload)
            return await self._tools.screened(
                stored.result or "", tool=tool, action_id=action.id, key=action.conversation
            )
        if action.status is ActionStatus.FAILED:
            return f"error: {stored.error or 'failed'}"
        approval = await self._parts.approvals.approval_of(action.id)
        status = approval.status if approval else ApprovalStatus.REJECTED
        return not_run_text(status, approval.decided_by if approval else None)

    async def sweep(self) -> int:
        """One pass: expire overdue approvals, run approved actions, resume ready turns.

        Returns how many turns were resumed. Safe to run in every process at once.
        """
        approvals = self._parts.approvals
        resumed = 0
        for expired in await approvals.expire_due():
            resumed += await self.settle(expired) is not None
        for stored in await approvals.list_actions(
            statuses=[ActionStatus.APPROVED], levels=[], conversation=None, limit=200
        ):
            approval = await approvals.approval_of(stored.action.id)
            # Auto-approved calls are run by their own turn; only human-approved ones here.
            if approval is not None and approval.status is ApprovalStatus.APPROVED:
                resumed += await self.settle(approval) is not None
        for stored in await approvals.list_actions(
            statuses=[ActionStatus.PENDING_APPROVAL], levels=[], conversation=None, limit=500
        ):
            key = stored.action.conversation
            if stored.action.kind is ActionKind.CHAT and key is not None:
                if await self._resume_if_ready(stored.action.id, key, deliver=True) is not None:
                    resumed += 1
        return resumed
