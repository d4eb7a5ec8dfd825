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

from core.approvals import INTERRUPTED, Requested
from core.chat_commands import ChatCommands, parse_command
from core.conversations import HISTORY_ROWS
from core.keyed_locks import KeyedLocks
from core.log_context import log_context
from core.orchestration_parts import OrchestrationParts
from core.parked_turns import ParkedTurns
from core.policy import RateLimiter, Refusal, check_access
from core.ports import ReplySink
from core.security.injection import policy_action
from core.storage.action_repo import StoredAction
from core.tool_calls import ToolCalls
from core.turns import DeltaHandler, Route, Turn, TurnEngine
from core.types import (
    ActionKind,
    ActionStatus,
    Approval,
    ChatMessage,
    ConversationKey,
    InboundMessage,
    Role,
    SecurityLevel,
    TurnResult,
)

log = logging.getLogger("switchboard.orchestrator")
# Outcomes that mark the inbound message "dropped": nothing was kept or asked.
_DROPPED = ("denied", "rate_limited", "budget_exceeded", "blocked", "too_long", "ignored")

BLOCKED_TEXT = (
    "This message looks like a prompt-injection attempt ({rules}), so it was not sent to "
    "the model. If that is a mistake, rephrase it; an operator can see the verdict in the "
    "audit log."
)


class Orchestrator:
    """Handles inbound messages and finishes turns that waited for approvals."""

    def __init__(self, parts: OrchestrationParts, *, limiter: RateLimiter | None = None) -> None:
        self._parts = parts
        self._limiter = limiter or RateLimiter()
        self._tools = ToolCalls(parts)
        self._engine = TurnEngine(parts, self._tools)
        self._commands = ChatCommands(parts, settle=self._settle_from_command)
        self._locks = KeyedLocks(shared=parts.shared_locks, namespace="conversation")
        self._sinks: dict[str, ReplySink] = {}
        self._parked = ParkedTurns(
            parts,
            tools=self._tools,
            engine=self._engine,
            locks=self._locks,
            deliver=self._deliver,
            notify=self._approval_closed,
        )
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
        if not await self.accept(message):
            return TurnResult(status="duplicate", conversation=message.conversation, reply="")
        result = await self.process(message, route=route, on_delta=on_delta)
        await self._mark(message, result)
        return result

    async def accept(self, message: InboundMessage) -> bool:
        """Keep the message in the inbox (and audit it); False when it was seen before.

        Channels call this before they acknowledge an event or move their polling offset,
        then ``process`` it, so an accepted message survives a crash in between.
        """
        if not await self._parts.inbox.accept(message, now=self._parts.clock()):
            return False
        await self._parts.audit.append(
            "message.accepted",
            actor=message.sender.identity,
            conversation=str(message.conversation),
            data={
                "platform": message.platform,
                "message_id": message.message_id,
                "chars": len(message.text),
                "sha256": hashlib.sha256(message.text.encode()).hexdigest(),
            },
        )
        return True

    async def process(
        self,
        message: InboundMessage,
        *,
        route: Route | None = None,
        on_delta: DeltaHandler | None = None,
    ) -> TurnResult:
        """Handle an accepted message; the caller records that it was handled.

        The conversation's lock is the first thing awaited, so messages processed in
        arrival order are handled in that order.
        """
        key = message.conversation
        async with log_context(conversation=key), self._locks.hold(str(key)):
            if message.sender.is_bot:
                return TurnResult(status="ignored", conversation=message.conversation, reply="")
            limit = self._parts.config().assistant.max_message_chars
            if len(message.text) > limit:
                chars = len(message.text)
                text = f"Your message has {chars:,} characters; the limit is {limit:,}."
                return self._result(message, "too_long", f"{text} Please shorten it.")
            return await self._handle_accepted(message, route or Route(), on_delta)

    async def _mark(self, message: InboundMessage, result: TurnResult) -> None:
        handled = result.status not in _DROPPED
        await self._parts.inbox.mark(
            platform=message.platform,
            message_id=message.message_id,
            status="handled" if handled else "dropped",
            now=self._parts.clock(),
        )

    async def recover(self, messages: list[InboundMessage] | None = None) -> int:
        """Answer messages accepted before a crash but never handled.

        ``messages``: those taken over from a dead replica; None: every unhandled one (one
        process alone on its database, at start-up).

        A message whose turn never started is handled now; one whose turn was cut off by
        the crash is answered from the history as it stands (tools that ran are not run
        again); one whose turn had finished or is waiting for approvals is only marked.
        Returns how many were answered; their answers go to the platform's sink.
        """
        answered = 0
        if messages is None:
            messages = await self._parts.inbox.unhandled()
        for message in messages:
            chat = await self._chat_action_for(message)
            key = message.conversation
            async with log_context(conversation=key), self._locks.hold(str(key)):
                if chat is None:
                    result = await self._handle_accepted(message, Route(), None)
                elif chat.action.status is ActionStatus.FAILED and chat.error == INTERRUPTED:
                    result = await self._rerun(message, chat)
                else:
                    result = None
            if result is not None:
                log.warning(
                    "event=message_recovered conversation=%s message_id=%s",
                    message.conversation,
                    message.message_id,
                )
                await self._deliver(result, answers=message)
                answered += 1
            await self._parts.inbox.mark(
                platform=message.platform,
                message_id=message.message_id,
                status="handled",
                now=self._parts.clock(),
            )
        return answered

    async def _chat_action_for(self, message: InboundMessage) -> StoredAction | None:
        for stored in await self._parts.approvals.list_actions(
            statuses=[], levels=[], conversation=message.conversation, limit=HISTORY_ROWS
        ):
            payload = stored.action.payload
            if (
                stored.action.kind is ActionKind.CHAT
                and payload.get("message_id") == message.message_id
                and payload.get("platform") == message.platform
            ):
                return stored
        return None

    async def _rerun(self, message: InboundMessage, interrupted: StoredAction) -> TurnResult:
        payload = interrupted.action.payload
        route = Route(provider=payload.get("provider"), model=payload.get("model"))
        tools_allowed = bool(payload.get("tools_allowed", True))
        requested = await self._start_chat(message, route, tools_allowed=tools_allowed)
        history = await self._parts.conversations.repo.recent(
            message.conversation, limit=HISTORY_ROWS
        )
        if not any(m.action_id == interrupted.action.id for m in history):
            # The crash came before the message was kept: keep it now, under the new turn.
            await self._keep(message, action_id=requested.action.id)
        turn = Turn(
            key=message.conversation,
            requester=message.sender.identity,
            chat_action_id=requested.action.id,
            route=route,
            tools_allowed=tools_allowed,
            in_reply_to=message.message_id,
        )
        return await self._engine.run(turn)

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
        budgets = self._parts.budgets
        over = (
            await budgets.check(message.sender.identity, message.conversation) if budgets else None
        )
        if over is not None:
            return await self._refused(message, over)
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
        await self._keep(message, action_id=requested.action.id)
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

    async def _keep(self, message: InboundMessage, *, action_id: str) -> None:
        await self._parts.conversations.append(
            message.conversation,
            [ChatMessage(role=Role.USER, content=message.text)],
            action_id=action_id,
            now=self._parts.clock(),
        )

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
        over_budget = refusal.code == "budget_exceeded"
        await self._parts.audit.append(
            "budget.exceeded" if over_budget else "message.refused",
            actor=message.sender.identity,
            conversation=str(message.conversation),
            data={"message_id": message.message_id, "code": refusal.code, **refusal.details},
        )
        status = refusal.code if refusal.code in ("rate_limited", "budget_exceeded") else "denied"
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
        return await self._parked.settle(approval, deliver=deliver)

    async def reset(self, key: ConversationKey, *, actor: str) -> int:
        """``/reset`` on behalf of ``actor`` (the admin API), in turn with the chat's messages."""
        async with self._locks.hold(str(key)):
            return await self._commands.reset(key, actor=actor)

    async def sweep(self) -> int:
        """One pass over decided, overdue and ready approvals (see ``core.parked_turns``)."""
        return await self._parked.sweep()

    async def _deliver(self, result: TurnResult, *, answers: InboundMessage | None = None) -> None:
        sink = self._sinks.get(result.conversation.platform)
        if sink is None:
            log.info(
                "event=reply_kept_in_history conversation=%s action=%s reason=no_channel",
                result.conversation,
                result.action_id,
            )
            return
        try:
            await sink.deliver(result, answers=answers)
        except Exception:  # one channel's failure must not stop the sweep for the others
            log.exception(
                "event=delivery_failed conversation=%s action=%s",
                result.conversation,
                result.action_id,
            )

    async def _approval_closed(self, approval: Approval, key: ConversationKey) -> None:
        sink = self._sinks.get(key.platform)
        if sink is None:
            return
        try:
            await sink.approval_closed(approval, key)
        except Exception:  # as for replies: one channel's failure stays its own
            log.exception("event=approval_update_failed approval=%s", approval.id)

    async def run_sweeper(self, *, interval_s: float = 1.0) -> None:
        """Sweep forever: every ``interval_s`` and whenever ``wake`` is set."""
        while True:
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=interval_s)
            except TimeoutError:
                pass
            self.wake.clear()
            await self.sweep()
