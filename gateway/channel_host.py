"""Runs the configured chat platforms: events in, the orchestrator, the outbox, delivery out.

For each channel adapter, under the supervisor: the adapter itself (polling, gateway
connection, socket) and its delivery worker. Every inbound message is accepted into the
inbox before the adapter acknowledges it, then processed in arrival order per
conversation; its replies are queued in the outbox in the same transaction that marks it
handled, and the delivery worker sends them. Turns that finish later (after an approval)
and approval outcomes go through the same outbox. Button presses are decisions, checked
against ``[security] approvers`` here, answered at once, and carried out in the background.

With several replicas on one PostgreSQL, what must run once runs under a shared lock
(``core.storage.shared_locks``): a platform session that must be single (an adapter with
``single_session``: Telegram polling, the Discord gateway, Slack Socket Mode) together with
that platform's delivery worker, or, for webhook-style platforms that every replica
serves, the delivery worker alone. The other replicas stand by ("standby" in the
channel's status) and take the lock within ``LEASE_POLL_S`` when its holder dies.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from core.delivery import DeliveryWorker
from core.errors import ApprovalConflict, NotFound, PermissionDenied
from core.ports import ChannelHost
from core.storage.outbox_repo import InboundRef, OutboxRepository
from core.types import (
    Approval,
    ConversationKey,
    DecisionOutcome,
    InboundMessage,
    OutboundItem,
    PendingApproval,
    TurnResult,
)
from gateway.runtime import Runtime
from gateway.stream_preview import Previewing, StreamPreview
from gateway.supervisor import Supervisor

log = logging.getLogger("switchboard.channels")

# Messages being processed at once over all channels; more wait in the queue (in order).
MAX_IN_FLIGHT = 64
TYPING_EVERY_S = 4.0  # Telegram shows "typing" for 5 s
LEASE_POLL_S = 1.0  # how often a standby replica tries to take a platform's lock
STANDBY = "standby"


class Adapter(Protocol):
    """What the host needs from a channel adapter."""

    name: str
    # True when only one process at a time may hold the platform connection.
    single_session: bool

    async def run(self, host: ChannelHost) -> None: ...

    def prepare(self, item: OutboundItem) -> list[OutboundItem]: ...

    async def deliver(self, item: OutboundItem, *, edit_message_id: str | None) -> str: ...

    async def typing(self, key: ConversationKey) -> None: ...

    def status(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...


def items_for(result: TurnResult) -> list[OutboundItem]:
    """What a channel shows for a turn: the reply, then one approval request per call."""
    key = result.conversation
    if result.status in ("duplicate", "ignored"):
        return []
    text = result.model_text if result.status == "awaiting_approval" else result.reply
    items = []
    if text and text.strip():
        items.append(
            OutboundItem(
                kind="reply",
                conversation=key,
                text=text,
                in_reply_to=result.in_reply_to,
                action_id=result.action_id,
            )
        )
    for pending in result.pending_approvals:
        items.append(
            OutboundItem(
                kind="approval",
                conversation=key,
                text=f"Approval needed: {pending.tool}",
                action_id=pending.action_id,
                approval=pending,
            )
        )
    return items


class GatewayChannelHost:
    """The ``ChannelHost`` every adapter of this process talks to."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._outbox = OutboxRepository(runtime.db)
        self.adapters: dict[str, Adapter] = {}
        self._workers: dict[str, DeliveryWorker] = {}
        self._queue: asyncio.Queue[InboundMessage] = asyncio.Queue()
        self._decisions: asyncio.Queue[Approval] = asyncio.Queue()
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._received: dict[str, int] = {}
        self._locks = runtime.shared_locks
        self._standby: set[str] = set()  # platforms whose session another replica holds

    def add(self, adapter: Adapter) -> None:
        """Serve ``adapter``'s platform through this host."""
        self.adapters[adapter.name] = adapter
        self._workers[adapter.name] = DeliveryWorker(
            platform=adapter.name, outbox=self._outbox, sender=adapter
        )
        self._runtime.orchestrator.register_sink(adapter.name, self)

    def start(self, supervisor: Supervisor) -> None:
        """Every adapter, its delivery worker and the inbound processor, supervised."""
        for name, adapter in self.adapters.items():
            session = functools.partial(adapter.run, self)
            delivery = self._workers[name].run
            if adapter.single_session:
                both = functools.partial(_together, session, delivery)
                supervisor.start(f"channel:{name}", self._leading(f"channel:{name}", name, both))
            else:
                supervisor.start(f"channel:{name}", session)
                supervisor.start(
                    f"delivery:{name}", self._leading(f"delivery:{name}", None, delivery)
                )
        supervisor.start("inbound-processor", self._process_forever)
        supervisor.start("decisions", self._settle_forever)

    def _leading(
        self, lock: str, standby_name: str | None, work: Callable[[], Awaitable[None]]
    ) -> Callable[[], Awaitable[None]]:
        """``work`` run only while this replica holds ``lock`` (waiting for it first)."""

        async def lead() -> None:
            if standby_name is not None:
                self._standby.add(standby_name)
            announced = False
            while not await self._locks.try_acquire(lock):
                if not announced:
                    log.info("event=standby lock=%s detail='another replica holds it'", lock)
                    announced = True
                await asyncio.sleep(LEASE_POLL_S)
            log.info("event=lock_taken lock=%s replica=%s", lock, self._runtime.replica.id)
            if standby_name is not None:
                self._standby.discard(standby_name)
            try:
                await _together(work, functools.partial(self._locks.watch, lock))
            finally:
                await self._locks.release(lock)

        return lead

    async def close(self) -> None:
        """Close every adapter's connections."""
        for adapter in self.adapters.values():
            self._runtime.orchestrator.unregister_sink(adapter.name)
            await adapter.close()

    # -- ChannelHost -------------------------------------------------------------------

    async def receive(self, message: InboundMessage) -> None:
        """Into the inbox (durable), then to the processor; a redelivery is dropped."""
        if await self._runtime.orchestrator.accept(message):
            self._received[message.platform] = self._received.get(message.platform, 0) + 1
            self._queue.put_nowait(message)

    async def decide(self, *, approval_id: str, approve: bool, decider: str) -> DecisionOutcome:
        """A button press: decided now, carried out in the background."""
        try:
            approval = await self._runtime.approvals.decide(
                approval_id, approve=approve, decider=decider
            )
        except PermissionDenied as exc:
            return DecisionOutcome(ok=False, message=f"Not allowed: {exc.message}.")
        except ApprovalConflict as exc:
            return DecisionOutcome(ok=False, message=exc.message)
        except NotFound:
            return DecisionOutcome(ok=False, message="This approval no longer exists.")
        # Platforms want the press answered at once (Discord within 3 s): the action runs
        # and the turn resumes behind this answer (and the sweeper would catch it anyway).
        self._decisions.put_nowait(approval)
        verb = "Approved" if approval.status.value == "approved" else "Rejected"
        return DecisionOutcome(ok=True, message=f"{verb}. Thanks, {decider}.")

    # -- ReplySink (turns that finish later, approval outcomes) ------------------------

    async def deliver(self, result: TurnResult, *, answers: InboundMessage | None = None) -> None:
        """Queue a resumed (or recovered) turn's answer for its channel.

        With ``answers``, that message is marked handled in the same transaction, so a
        crash right after can never answer it a second time.
        """
        ref = InboundRef(answers.platform, answers.message_id) if answers else None
        await self._enqueue(items_for(result), inbound=ref)

    async def approval_closed(self, approval: Approval, conversation: ConversationKey) -> None:
        """Queue the edit of the approval's message: decision, who, no buttons."""
        stored = await self._runtime.approvals.get_action(approval.action_id)
        payload = stored.action.payload
        pending = PendingApproval(
            id=approval.id,
            action_id=approval.action_id,
            tool=str(payload.get("tool", "")),
            level=approval.level,
            arguments=dict(payload.get("arguments", {})),
            expires_at=approval.expires_at,
        )
        item = OutboundItem(
            kind="approval_update",
            conversation=conversation,
            approval=pending,
            approval_status=approval.status,
            decided_by=approval.decided_by,
        )
        await self._enqueue([item], inbound=None)

    # -- processing ------------------------------------------------------------------

    async def _process_forever(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            while True:
                message = await self._queue.get()
                await self._slots.acquire()
                tasks.create_task(self._process(message))

    async def _settle_forever(self) -> None:
        while True:
            approval = await self._decisions.get()
            try:
                await self._runtime.orchestrator.settle(approval)
            except Exception:  # the sweeper retries whatever this left undone
                log.exception("event=settle_failed approval=%s", approval.id)

    async def _process(self, message: InboundMessage) -> None:
        try:
            adapter = self.adapters.get(message.platform)
            preview = None
            if isinstance(adapter, Previewing):
                preview = StreamPreview(
                    adapter, key=message.conversation, in_reply_to=message.message_id
                )
            typing = asyncio.create_task(self._keep_typing(adapter, message.conversation))
            try:
                result = await self._runtime.orchestrator.process(
                    message, on_delta=preview.on_delta if preview else None
                )
            finally:
                typing.cancel()
            items = items_for(result)
            if preview is not None:
                items = preview.replace_with(items)
            ref = InboundRef(platform=message.platform, message_id=message.message_id)
            await self._enqueue(items, inbound=ref)
        except Exception:  # stays "accepted": answered after the next restart
            log.exception(
                "event=processing_failed conversation=%s message_id=%s",
                message.conversation,
                message.message_id,
            )
        finally:
            self._slots.release()

    async def _keep_typing(self, adapter: Adapter | None, key: ConversationKey) -> None:
        if adapter is None:
            return
        while True:
            await adapter.typing(key)
            await asyncio.sleep(TYPING_EVERY_S)

    async def _enqueue(self, items: list[OutboundItem], *, inbound: InboundRef | None) -> None:
        prepared: list[OutboundItem] = []
        for item in items:
            adapter = self.adapters.get(item.conversation.platform)
            prepared.extend(adapter.prepare(item) if adapter else [item])
        await self._outbox.enqueue(prepared, inbound=inbound, now=datetime.now(UTC))
        for item in prepared:
            worker = self._workers.get(item.conversation.platform)
            if worker is not None:
                worker.wake.set()

    def status(self) -> dict[str, dict[str, Any]]:
        """Each adapter's state, with its message counters (since start)."""
        return {
            name: {
                **adapter.status(),
                **(
                    {"state": STANDBY, "connected": False, "detail": "another replica holds it"}
                    if name in self._standby
                    else {}
                ),
                "received": self._received.get(name, 0),
                "sent": self._workers[name].sent,
                "failed": self._workers[name].failed,
            }
            for name, adapter in self.adapters.items()
        }


async def _together(*works: Callable[[], Awaitable[None]]) -> None:
    """Run every ``work`` until the first one ends or fails; then stop the others.

    Plain tasks rather than a TaskGroup: on Python 3.11 a TaskGroup whose child fails while
    the group is being cancelled raises the child's error and drops the cancellation, and
    the supervisor would then restart a task it is stopping.
    """
    running = [asyncio.ensure_future(_coro(work)) for work in works]
    try:
        done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
    for task in done:
        task.result()  # the first one's error, if it failed


async def _coro(work: Callable[[], Awaitable[None]]) -> None:
    await work()
