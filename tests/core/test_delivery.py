"""The outbox and the delivery worker, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.delivery import DeliveryWorker
from core.errors import DeliveryRefused, DeliveryRetry
from core.storage import Database
from core.storage.inbox_repo import InboxRepository
from core.storage.outbox_repo import InboundRef, OutboxRepository
from core.types import (
    ApprovalStatus,
    ConversationKey,
    InboundMessage,
    OutboundItem,
    PendingApproval,
    SecurityLevel,
    Sender,
)

A = ConversationKey(platform="telegram", chat="1")
B = ConversationKey(platform="telegram", chat="2")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class FakeSender:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str | None]] = []
        self.failures: dict[str, Exception] = {}
        self.counter = 100

    async def deliver(self, item: OutboundItem, *, edit_message_id: str | None) -> str:
        failure = self.failures.pop(item.text, None)
        if failure is not None:
            raise failure
        self.sent.append((item.conversation.chat, item.text, edit_message_id))
        self.counter += 1
        return str(self.counter)


def reply(key: ConversationKey, text: str) -> OutboundItem:
    return OutboundItem(kind="reply", conversation=key, text=text)


def worker(db: Database, sender: FakeSender, clock: Clock) -> DeliveryWorker:
    return DeliveryWorker(
        platform="telegram", outbox=OutboxRepository(db), sender=sender, clock=clock, rng=lambda: 1
    )


async def test_replies_are_sent_once_in_order(migrated_db: Database) -> None:
    outbox, sender, clock = OutboxRepository(migrated_db), FakeSender(), Clock()
    await outbox.enqueue(
        [reply(A, "one"), reply(A, "two"), reply(B, "other")], inbound=None, now=clock()
    )
    engine = worker(migrated_db, sender, clock)
    assert await engine.drain() == 3
    assert [text for _, text, _ in sender.sent] == ["one", "two", "other"]
    assert await engine.drain() == 0
    assert await outbox.backlog("telegram") == 0


async def test_a_retry_holds_back_its_conversation_only(migrated_db: Database) -> None:
    outbox, sender, clock = OutboxRepository(migrated_db), FakeSender(), Clock()
    sender.failures["one"] = DeliveryRetry("429", retry_after=30)
    await outbox.enqueue(
        [reply(A, "one"), reply(A, "two"), reply(B, "other")], inbound=None, now=clock()
    )
    engine = worker(migrated_db, sender, clock)
    await engine.drain()
    assert [text for _, text, _ in sender.sent] == ["other"]  # "two" waits behind "one"
    clock.now += timedelta(seconds=29)
    await engine.drain()
    assert [text for _, text, _ in sender.sent] == ["other"]
    clock.now += timedelta(seconds=2)
    await engine.drain()
    assert [text for _, text, _ in sender.sent] == ["other", "one", "two"]


async def test_refused_and_hopeless_rows_are_failed(migrated_db: Database) -> None:
    outbox, sender, clock = OutboxRepository(migrated_db), FakeSender(), Clock()
    sender.failures["bad"] = DeliveryRefused("chat not found")
    await outbox.enqueue([reply(A, "bad")], inbound=None, now=clock())
    engine = DeliveryWorker(
        platform="telegram", outbox=outbox, sender=sender, clock=clock, max_attempts=2
    )
    await engine.drain()
    assert engine.failed == 1 and sender.sent == []
    sender.failures["flaky"] = DeliveryRetry("down")
    await outbox.enqueue([reply(B, "flaky")], inbound=None, now=clock())
    await engine.drain()
    clock.now += timedelta(seconds=10)
    sender.failures["flaky"] = DeliveryRetry("still down")
    await engine.drain()
    assert engine.failed == 2 and await outbox.backlog() == 0


async def test_replies_are_queued_with_the_inbound_marked_handled(migrated_db: Database) -> None:
    outbox, inbox, clock = OutboxRepository(migrated_db), InboxRepository(migrated_db), Clock()
    message = InboundMessage(
        platform="telegram",
        message_id="1:5",
        conversation=A,
        sender=Sender(platform="telegram", user_id="9"),
        text="hi",
    )
    assert await inbox.accept(message, now=clock())
    ref = InboundRef(platform="telegram", message_id="1:5")
    assert await outbox.enqueue([reply(A, "hello")], inbound=ref, now=clock())
    assert await inbox.status_of(platform="telegram", message_id="1:5") == "handled"
    assert not await outbox.enqueue([reply(A, "hello again")], inbound=ref, now=clock())
    assert await outbox.backlog() == 1


async def test_an_approval_update_edits_the_message_with_the_buttons(
    migrated_db: Database,
) -> None:
    outbox, sender, clock = OutboxRepository(migrated_db), FakeSender(), Clock()
    pending = PendingApproval(
        id="abc123def456",
        action_id="a" * 32,
        tool="shell",
        level=SecurityLevel.CRITICAL,
        arguments={"argv": ["df"]},
        expires_at=clock() + timedelta(minutes=10),
    )
    ask = OutboundItem(kind="approval", conversation=A, text="approve?", approval=pending)
    await outbox.enqueue([ask], inbound=None, now=clock())
    engine = worker(migrated_db, sender, clock)
    await engine.drain()
    done = OutboundItem(
        kind="approval_update",
        conversation=A,
        text="approved",
        approval=pending,
        approval_status=ApprovalStatus.APPROVED,
        decided_by="telegram:7",
    )
    await outbox.enqueue([done], inbound=None, now=clock())
    await engine.drain()
    assert sender.sent == [("1", "approve?", None), ("1", "approved", "101")]
