"""The orchestrator: one normalized message in, one screened, authorized, audited turn out.

``handle(message)`` runs DESIGN.md's flow: dedupe on (platform, message id) in the inbox,
then, under the conversation's lock (its messages in order, other conversations
concurrently): access policy and rate limit, chat commands, the injection screen, the
user message persisted, a CHAT action, and the turn (``core.turns``). It returns a
``TurnResult`` for the caller (a channel, ``POST /api/chat``, the console) to render.

A turn parked on approvals is finished later by ``settle(approval)`` (called by whoever
recorded the decision) or by ``sweep()`` (the periodic pass that expires overdue
approvals, runs actions approved in another process and resumes every parked turn whose
calls are all decided); its result goes to the ``ReplySink`` registered for the
conversation's platform. Both are safe to run anywhere at any time: claiming an action
and resuming a turn are conditional updates, so each happens once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

from core.approvals import Requested
from core.chat_commands import ChatCommands, parse_command
from core.conversations import HISTORY_ROWS
from core.keyed_locks import KeyedLocks
from core.orchestration_parts import OrchestrationParts
from core.policy import RateLimiter, Refusal, check_access
from core.ports import ReplySink
from core.security.injection import policy_action
from core.storage.action_repo import StoredAction
from core.tool_calls import ToolCalls, call_of, is_placeholder, not_run_text
from core.turns import DeltaHandler, Route, Turn, TurnEngine
from core.types import (
    ActionKind,
    ActionStatus,
    Approval,
    ApprovalStatus,
    ChatMessage,
    ConversationKey,
    InboundMessage,
    Role,
    SecurityLevel,
    TurnResult,
)

log = logging.getLogger("switchboard.orchestrator")

OPEN_STATES = frozenset(
    {
        ActionStatus.REQUESTED,
        ActionStatus.PENDING_APPROVAL,
        ActionStatus.APPROVED,
        ActionStatus.RUNNING,
    }
)
BLOCKED_TEXT = (
    "This message looks like a prompt-injection attempt ({rules}), so it was not sent to "
    "the model. If that is a mistake, rephrase it; an operator can see the verdict in the "
    "audit log."
)
RESUME_NOTE = (
    "[gateway] The approvals asked for earlier were decided; each tool result above says "
    "what happened. Tell the user the outcome."
)


class Orchestrator:
    """Handles inbound messages and finishes turns that waited for approvals."""

    def __init__(self, parts: OrchestrationParts, *, limiter: RateLimiter | None = None) -> None:
        self._parts = parts
        self._limiter = limiter or RateLimiter()
        self._tools = ToolCalls(parts)
        self._engine = TurnEngine(parts, self._tools)
        self._commands = ChatCommands(parts, settle=self._settle_from_command)
        self._locks = KeyedLocks()
        self._sinks: dict[str, ReplySink] = {}
        self.wake = asyncio.Event()

    def register_sink(self, platform: str, sink: ReplySink) -> None:
        """Deliver later results of ``platform``'s conversations to ``sink``."""
        self._sinks[platform] = sink

    def unregister_sink(self, platform: str) -> None:
        """Stop delivering to ``platform`` (its channel stopped)."""
        self._sinks.pop(platform, None)

    async def handle(
        self,
        message: InboundMessage,
        *,
        route: Route | None = None,
        on_delta: DeltaHandler | None = None,
    ) -> TurnResult:
        """Everything one message leads to; ``on_delta`` receives streamed text."""
        key = message.conversation
        if message.sender.is_bot:
            return TurnResult(status="ignored", conversation=key, reply="")
        limit = self._parts.config().assistant.max_message_chars
        if len(message.text) > limit:
            text = f"Your message has {len(message.text):,} characters; the limit is {limit:,}."
            return self._result(message, "too_long", f"{text} Please shorten it.")
        if not await self._parts.inbox.accept(message, now=self._parts.clock()):
            return TurnResult(status="duplicate", conversation=key, reply="")
        await self._parts.audit.append(
            "message.accepted",
            actor=message.sender.identity,
            conversation=str(key),
            data={
                "platform": message.platform,
                "message_id": message.message_id,
                "chars": len(message.text),
                "sha256": hashlib.sha256(message.text.encode()).hexdigest(),
            },
        )
        async with self._locks.hold(str(key)):
            result = await self._handle_accepted(message, route or Route(), on_delta)
        handled = result.status not in ("denied", "rate_limited", "blocked")
        await self._parts.inbox.mark(
            platform=message.platform,
            message_id=message.message_id,
            status="handled" if handled else "dropped",
            now=self._parts.clock(),
        )
        return result

    async def _handle_accepted(
        self, message: InboundMessage, route: Route, on_delta: DeltaHandler | None
    ) -> TurnResult:
        config = self._parts.config()
        refusal = check_access(config, message.sender) or self._limiter.take(
            message.sender.identity, config.access
        )
        if refusal is not None:
            return await self._refused(message, refusal)
        command = parse_command(message.text)
        if command is not None:
            return await self._commands.run(command, message)
        verdict = self._parts.defender().screen(message.text, source="user")
        settings = config.security.injection
        decision = policy_action(verdict, on_flag=settings.on_flag, on_block=settings.on_block)
        await self._parts.audit.append(
            "message.screened",
            actor=message.sender.identity,
            conversation=str(message.conversation),
            data={
                "message_id": message.message_id,
                "verdict": verdict.verdict,
                "score": round(verdict.score, 3),
                "rules": list(verdict.rules),
                "decision": decision,
            },
        )
        if decision == "block":
            rules = ", ".join(verdict.rules[:3]) or "screen"
            blocked = self._result(message, "blocked", BLOCKED_TEXT.format(rules=rules))
            return blocked.model_copy(update={"screen": verdict})
        route = await self._route_for(message.conversation, route)
        # A flagged message is still answered, but without tools: nothing it says can act.
        tools_allowed = decision == "allow"
        requested = await self._start_chat(message, route, tools_allowed=tools_allowed)
        await self._parts.conversations.append(
            message.conversation,
            [ChatMessage(role=Role.USER, content=message.text)],
            action_id=requested.action.id,
            now=self._parts.clock(),
        )
        turn = Turn(
            key=message.conversation,
            requester=message.sender.identity,
            chat_action_id=requested.action.id,
            route=route,
            tools_allowed=tools_allowed,
            screen=verdict,
            in_reply_to=message.message_id,
        )
        return await self._engine.run(turn, on_delta=on_delta)

    async def _route_for(self, key: ConversationKey, route: Route) -> Route:
        if route.provider or route.model:
            return route  # the request's own choice wins over the conversation's
        state = await self._parts.conversations.repo.get(key)
        if state is None:
            return route
        return Route(provider=state.provider, model=state.model)

    async def _start_chat(
        self, message: InboundMessage, route: Route, *, tools_allowed: bool
    ) -> Requested:
        requested = await self._parts.approvals.request(
            kind=ActionKind.CHAT,
            level=SecurityLevel.LOW,
            payload={
                "platform": message.platform,
                "message_id": message.message_id,
                "provider": route.provider,
                "model": route.model,
                "tools_allowed": tools_allowed,
            },
            conversation=message.conversation,
            requester=message.sender.identity,
        )
        await self._parts.approvals.claim(requested.action.id)
        return requested

    async def _refused(self, message: InboundMessage, refusal: Refusal) -> TurnResult:
        await self._parts.audit.append(
            "message.refused",
            actor=message.sender.identity,
            conversation=str(message.conversation),
            data={"message_id": message.message_id, "code": refusal.code},
        )
        status = "rate_limited" if refusal.code == "rate_limited" else "denied"
        result = self._result(message, status, refusal.message)
        return result.model_copy(update={"retry_after_s": refusal.retry_after_s})

    @staticmethod
    def _result(message: InboundMessage, status: str, reply: str) -> TurnResult:
        return TurnResult.model_validate(
            {
                "status": status,
                "conversation": message.conversation,
                "reply": reply,
                "in_reply_to": message.message_id,
            }
        )

    # -- decisions and parked turns ------------------------------------------------

    async def _settle_from_command(
        self, approval: Approval, here: ConversationKey
    ) -> TurnResult | None:
        stored = await self._parts.approvals.get_action(approval.action_id)
        if stored.action.conversation == here:
            return await self.settle(approval, deliver=False)
        # Another conversation's turn: taking its lock while holding ours could deadlock
        # with a decision made the other way round, so the sweeper picks it up at once.
        self.wake.set()
        return None

    async def settle(self, approval: Approval, *, deliver: bool = True) -> TurnResult | None:
        """After a decision: run (or not) the call, record its result, resume the turn.

        Returns the resumed turn's result (also delivered to the platform's sink unless
        ``deliver`` is false), or None when the turn still waits or was resumed elsewhere.
        """
        stored = await self._parts.approvals.get_action(approval.action_id)
        action = stored.action
        if action.kind is not ActionKind.TOOL_CALL or action.conversation is None:
            return None
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

    async def _deliver(self, result: TurnResult) -> None:
        sink = self._sinks.get(result.conversation.platform)
        if sink is None:
            log.info(
                "event=reply_kept_in_history conversation=%s action=%s reason=no_channel",
                result.conversation,
                result.action_id,
            )
            return
        try:
            await sink.deliver(result)
        except Exception:  # one channel's failure must not stop the sweep for the others
            log.exception(
                "event=delivery_failed conversation=%s action=%s",
                result.conversation,
                result.action_id,
            )

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

    async def run_sweeper(self, *, interval_s: float = 1.0) -> None:
        """Sweep forever: every ``interval_s`` and whenever ``wake`` is set."""
        while True:
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=interval_s)
            except TimeoutError:
                pass
            self.wake.clear()
            await self.sweep()
