"""The console channel: the assistant on a terminal, through the same orchestrator.

Each line typed is one message of the ``console`` platform from ``console:<user>`` in the
conversation ``console:<user>``; answers stream as they are written. Approvals are
answered with ``/approve ID`` or ``/reject ID`` (the person at the gateway's terminal is
the operator). A turn that finishes later, after an approval decided elsewhere, is
printed when it arrives.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TextIO

from core.turns import Route
from core.types import Approval, ConversationKey, InboundMessage, OutboundReply, Sender, TurnResult

PLATFORM = "console"
ReadLine = Callable[[], Awaitable[str]]
DeltaHandler = Callable[[str], Awaitable[None]]
_SILENT = frozenset({"duplicate", "ignored"})


class Handle(Protocol):
    """``Orchestrator.handle`` as the console calls it."""

    def __call__(
        self, message: InboundMessage, *, route: Route | None, on_delta: DeltaHandler | None
    ) -> Awaitable[TurnResult]: ...


def render(result: TurnResult, *, streamed: str = "") -> str:
    """What the terminal shows for a result (the streamed part was shown already)."""
    if result.status in _SILENT:
        return ""
    reply = result.reply
    if streamed and reply.startswith(streamed):
        reply = reply[len(streamed) :]
    lines = [reply.strip()] if reply.strip() else []
    for item in result.pending_approvals:
        arguments = json.dumps(item.arguments, ensure_ascii=False)
        lines.append(f"  [{item.level.value}] {item.tool} {arguments}  id {item.id}")
    if result.provider and result.status == "answered":
        lines.append(f"  ({result.provider}/{result.model})")
    return "\n".join(lines)


class ConsoleChannel:
    """Reads lines, prints answers; also the ReplySink for the console platform."""

    name = PLATFORM

    def __init__(
        self,
        *,
        user: str,
        read_line: ReadLine,
        out: TextIO,
        route: Route | None = None,
        stream: bool = True,
    ) -> None:
        self._user = user
        self._read_line = read_line
        self._out = out
        self._route = route or Route()
        self._stream = stream
        self._ids = itertools.count(1)
        # Message ids must not repeat across sessions: the inbox remembers them.
        self._session = f"{time.time_ns():x}"
        self.key = ConversationKey(platform=PLATFORM, chat=user)

    def message(self, text: str) -> InboundMessage:
        """One typed line as a normalized message."""
        return InboundMessage(
            platform=PLATFORM,
            message_id=f"{self._session}-{next(self._ids)}",
            conversation=self.key,
            sender=Sender(platform=PLATFORM, user_id=self._user, display_name=self._user),
            text=text,
            is_direct=True,
        )

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()

    async def run(self, handle: Handle) -> None:
        """Until end of input: every line to ``handle``, every answer to the terminal."""
        self._write(
            f"Switchboard console as {PLATFORM}:{self._user}. /help lists commands; Ctrl-D quits.\n"
        )
        while True:
            self._write("> ")
            line = await self._read_line()
            if not line:
                self._write("\n")
                return
            text = line.strip()
            if not text:
                continue
            await self._answer(handle, text)

    async def _answer(self, handle: Handle, text: str) -> None:
        streamed: list[str] = []

        async def on_delta(piece: str) -> None:
            streamed.append(piece)
            self._write(piece)

        result = await handle(
            self.message(text), route=self._route, on_delta=on_delta if self._stream else None
        )
        shown = render(result, streamed="".join(streamed))
        if streamed:
            self._write("\n")
        if shown:
            self._write(f"{shown}\n")

    async def deliver(self, result: TurnResult, *, answers: InboundMessage | None = None) -> None:
        """A turn finished later (an approval was decided): print it between prompts."""
        shown = render(result)
        if shown:
            self._write(f"\n{shown}\n> ")

    async def approval_closed(self, approval: Approval, conversation: ConversationKey) -> None:
        """Say how an approval asked here ended, unless this terminal decided it."""
        if approval.decided_by and approval.decided_by.endswith(f"console:{self._user}"):
            return
        who = f" by {approval.decided_by}" if approval.decided_by else ""
        self._write(f"\napproval {approval.id}: {approval.status.value}{who}\n> ")

    async def send(self, reply: OutboundReply) -> str:
        """Print a reply; its id is a counter."""
        self._write(f"\n{reply.text}\n> ")
        return str(next(self._ids))

    def status(self) -> Mapping[str, Any]:
        """The console is connected while it runs."""
        return {"name": PLATFORM, "state": "connected", "user": self._user}
