"""Chat commands answered by the gateway itself, without the model.

``/help``, ``/reset``, ``/model``, ``/provider``, ``/status``, ``/approve ID`` and
``/reject ID``. Telegram appends the bot's name in groups (``/help@my_bot``); that suffix
is ignored. Console users are the operator at the gateway's own terminal (the console
runs where the config and vault key are readable), so their decisions count as the
operator's; everyone else must be in ``[security] approvers``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from core.approvals import OPERATOR_PREFIX
from core.budget_status import status_lines
from core.errors import ApprovalConflict, NotFound, PermissionDenied
from core.orchestration_parts import OrchestrationParts
from core.types import (
    ActionKind,
    ActionStatus,
    Approval,
    ConversationKey,
    InboundMessage,
    TurnResult,
)

COMMANDS = ("help", "reset", "model", "provider", "status", "approve", "reject")
_COMMAND = re.compile(r"^/([A-Za-z_]+)(?:@\S+)?(?:\s+(.*))?$", re.DOTALL)
CONSOLE_PLATFORM = "console"

HELP_TEXT = """\
Talk to me in plain words; these commands are answered by the gateway itself:
/help - this list
/reset - forget this conversation (history and /model, /provider choices)
/model [NAME | provider/NAME | default] - show or choose the model here
/provider [NAME | default] - show or choose the provider here
/status - providers, this conversation's settings, pending approvals, usage and budgets
/approve ID, /reject ID - decide a pending approval (approvers only)"""

Settle = Callable[[Approval, ConversationKey], Awaitable[TurnResult | None]]


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed command: its name and the rest of the line."""

    name: str
    argument: str


def parse_command(text: str) -> Command | None:
    """The command in ``text``, or None when it is not one (unknown names included)."""
    match = _COMMAND.match(text.strip())
    if match is None:
        return None
    name = match.group(1).lower()
    return Command(name, (match.group(2) or "").strip()) if name in COMMANDS else None


def decider_of(message: InboundMessage) -> str:
    """Who a decision made from this message is recorded as."""
    if message.platform == CONSOLE_PLATFORM:
        return f"{OPERATOR_PREFIX}{message.sender.identity}"
    return message.sender.identity


class ChatCommands:
    """Runs a parsed command for the orchestrator."""

    def __init__(self, parts: OrchestrationParts, *, settle: Settle) -> None:
        self._parts = parts
        self._settle = settle

    async def run(self, command: Command, message: InboundMessage) -> TurnResult:
        """The gateway's own answer to ``command``."""
        handler = getattr(self, f"_{command.name}")
        reply: str | TurnResult = await handler(command.argument, message)
        if isinstance(reply, TurnResult):
            return reply
        return TurnResult(
            status="command",
            conversation=message.conversation,
            reply=reply,
            in_reply_to=message.message_id,
        )

    async def _help(self, _: str, __: InboundMessage) -> str:
        return HELP_TEXT

    async def _reset(self, _: str, message: InboundMessage) -> str:
        count = await self.reset(message.conversation, actor=message.sender.identity)
        return f"Done: forgot {count} messages. The next message starts a new conversation."

    async def reset(self, key: ConversationKey, *, actor: str) -> int:
        """What ``/reset`` does: forget the history and overrides, audited; how many went."""
        count = await self._parts.conversations.repo.reset(key, now=self._parts.clock())
        await self._parts.audit.append(
            "conversation.reset", actor=actor, conversation=str(key), data={"messages": count}
        )
        return count

    async def _provider(self, argument: str, message: InboundMessage) -> str:
        manager = self._parts.manager()
        key = message.conversation
        state = await self._parts.conversations.repo.get(key)
        names = manager.names()
        listed = ", ".join(names) or "none"
        if not argument:
            current = state.provider if state and state.provider else None
            shown = current or f"{manager.default_name} (the default)"
            return f"Provider here: {shown}. Configured: {listed}. Change it with /provider NAME."
        if argument.lower() == "default":
            model = state.model if state else None
            await self._set(key, provider=None, model=model)
            return f"Provider here: back to the default ({manager.default_name})."
        if argument not in names:
            return f"Unknown provider {argument!r}. Configured: {listed}."
        # A model chosen for another provider would not exist on this one.
        await self._set(key, provider=argument, model=None)
        model = manager.spec(argument).options.default_model or "its default model"
        return f"Provider here: {argument} ({model}). /provider default undoes it."

    async def _model(self, argument: str, message: InboundMessage) -> str:
        manager = self._parts.manager()
        key = message.conversation
        state = await self._parts.conversations.repo.get(key)
        provider = state.provider if state else None
        if not argument:
            model = state.model if state and state.model else None
            name = provider or manager.default_name
            default_model = (
                manager.spec(name).options.default_model if name in manager.names() else None
            )
            shown = model or f"{default_model or 'the provider default'} (the default)"
            return f"Model here: {shown} on {name}. Change it with /model NAME."
        if argument.lower() == "default":
            await self._set(key, provider=provider, model=None)
            return "Model here: back to the provider's default."
        head, slash, tail = argument.partition("/")
        if slash and head in manager.names():
            await self._set(key, provider=head, model=tail)
            return f"Model here: {tail} on {head}. /model default undoes it."
        await self._set(key, provider=provider, model=argument)
        where = provider or manager.default_name
        return f"Model here: {argument} on {where}. /model default undoes it."

    async def _set(self, key: ConversationKey, *, provider: str | None, model: str | None) -> None:
        await self._parts.conversations.repo.set_overrides(
            key, provider=provider, model=model, now=self._parts.clock()
        )

    async def _status(self, _: str, message: InboundMessage) -> str:
        manager = self._parts.manager()
        key = message.conversation
        state = await self._parts.conversations.repo.get(key)
        lines = [f"Conversation {key}: {state.message_count if state else 0} messages kept."]
        if state and (state.provider or state.model):
            lines.append(
                f"Chosen here: provider {state.provider or '-'}, model {state.model or '-'}."
            )
        lines.append("Providers:")
        default = manager.default_name
        for name in manager.names():
            health = manager.cached_health(name)
            if health is None:
                state_text = "not checked yet"
            elif health.healthy:
                state_text = "healthy"
            else:
                state_text = f"unhealthy ({health.error or 'no detail'})"
            marker = " (default)" if name == default else ""
            circuit = manager.circuit_state(name)
            circuit_text = "" if circuit == "closed" else f", circuit {circuit}"
            lines.append(f"  {name}{marker}: {state_text}{circuit_text}")
        pending = await self._parts.approvals.list_actions(
            statuses=[ActionStatus.PENDING_APPROVAL], levels=[], conversation=key
        )
        waiting = [s for s in pending if s.action.kind is ActionKind.TOOL_CALL]
        lines.append(f"Pending approvals here: {len(waiting)}.")
        if self._parts.budgets is not None:
            identity = message.sender.identity
            lines.extend(await status_lines(self._parts.budgets, identity, key))
        return "\n".join(lines)

    async def _approve(self, argument: str, message: InboundMessage) -> str | TurnResult:
        return await self._decide(argument, message, approve=True)

    async def _reject(self, argument: str, message: InboundMessage) -> str | TurnResult:
        return await self._decide(argument, message, approve=False)

    async def _decide(
        self, argument: str, message: InboundMessage, *, approve: bool
    ) -> str | TurnResult:
        verb = "approve" if approve else "reject"
        approval_id = argument.split()[0] if argument else ""
        if not approval_id:
            return f"Which one? Send /{verb} ID (the id is in the approval request)."
        try:
            approval = await self._parts.approvals.decide(
                approval_id, approve=approve, decider=decider_of(message)
            )
        except NotFound:
            return f"There is no approval {approval_id!r}. /status lists pending ones."
        except PermissionDenied as exc:
            return f"Not allowed: {exc.message}."
        except ApprovalConflict as exc:
            return f"Nothing changed: {exc.message}."
        done = f"{approval.status.value.capitalize()} by {approval.decided_by}: {approval.id}."
        resumed = await self._settle(approval, message.conversation)
        if resumed is None:
            return done
        return resumed.model_copy(
            update={"reply": f"{done}\n\n{resumed.reply}", "in_reply_to": message.message_id}
        )
