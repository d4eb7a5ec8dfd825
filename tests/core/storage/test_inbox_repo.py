"""The inbound dedupe ledger, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from core.storage import Database
from core.storage.inbox_repo import InboxRepository
from core.types import ConversationKey, InboundMessage, Sender

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def inbound(message_id: str, *, platform: str = "telegram", text: str = "hi") -> InboundMessage:
    return InboundMessage(
        platform=platform,
        message_id=message_id,
        conversation=ConversationKey(platform=platform, chat="42", thread="t:1"),
        sender=Sender(platform=platform, user_id="7", display_name="Zoë ✨"),
        text=text,
        is_direct=True,
        mentions_bot=True,
        reply_to_message_id="m0",
        received_at=T0 - timedelta(seconds=1),
    )


async def test_accept_twice_is_true_then_false_and_changes_nothing(
    migrated_db: Database,
) -> None:
    inbox = InboxRepository(migrated_db)
    assert await inbox.accept(inbound("m1"), now=T0)
    assert await inbox.mark(platform="telegram", message_id="m1", status="handled", now=T0)
    assert not await inbox.accept(inbound("m1", text="redelivered"), now=T0)
    assert await inbox.status_of(platform="telegram", message_id="m1") == "handled"
    # Same id on another platform is another message.
    assert await inbox.accept(inbound("m1", platform="slack"), now=T0)
    assert await inbox.status_of(platform="slack", message_id="m1") == "accepted"


@pytest.mark.slow
async def test_fifty_concurrent_accepts_of_one_message_have_one_winner(
    migrated_db: Database,
) -> None:
    inbox = InboxRepository(migrated_db)
    results = await asyncio.gather(*(inbox.accept(inbound("m1"), now=T0) for _ in range(50)))
    assert results.count(True) == 1
    assert results.count(False) == 49
    assert await inbox.unhandled() == [inbound("m1")]


async def test_mark_moves_only_out_of_accepted(migrated_db: Database) -> None:
    inbox = InboxRepository(migrated_db)
    for n in range(3):
        await inbox.accept(inbound(f"m{n}"), now=T0)

    assert await inbox.mark(platform="telegram", message_id="m0", status="dropped", now=T0)
    assert not await inbox.mark(platform="telegram", message_id="m0", status="handled", now=T0)
    assert await inbox.status_of(platform="telegram", message_id="m0") == "dropped"
    assert await inbox.mark(platform="telegram", message_id="m1", status="failed", now=T0)
    assert not await inbox.mark(platform="telegram", message_id="m1", status="failed", now=T0)
    assert not await inbox.mark(platform="telegram", message_id="nope", status="handled", now=T0)
    assert await inbox.status_of(platform="telegram", message_id="nope") is None
    assert await inbox.status_of(platform="telegram", message_id="m2") == "accepted"
    with pytest.raises(ValueError):
        await inbox.mark(platform="telegram", message_id="m2", status="accepted", now=T0)
    assert await inbox.status_of(platform="telegram", message_id="m2") == "accepted"


@pytest.mark.slow
async def test_concurrent_marks_have_one_winner(migrated_db: Database) -> None:
    inbox = InboxRepository(migrated_db)
    await inbox.accept(inbound("m1"), now=T0)
    results = await asyncio.gather(
        *(
            inbox.mark(
                platform="telegram",
                message_id="m1",
                status="handled" if n % 2 else "failed",
                now=T0,
            )
            for n in range(20)
        )
    )
    assert results.count(True) == 1


async def test_unhandled_gives_back_the_accepted_ones_oldest_first_as_they_were(
    migrated_db: Database,
) -> None:
    inbox = InboxRepository(migrated_db)
    messages = [inbound(f"m{n}", text=f"texte n°{n} 🎉") for n in range(6)]
    messages.append(
        InboundMessage(
            platform="console",
            message_id="c1",
            conversation=ConversationKey(platform="console", chat="local"),
            sender=Sender(platform="console", user_id="admin"),
            text="minimal",
        )
    )
    # Arrival order, not id order in the text, is what counts.
    for message in reversed(messages):
        assert await inbox.accept(message, now=T0)
    for handled in ("m1", "m4"):
        await inbox.mark(platform="telegram", message_id=handled, status="handled", now=T0)
    await inbox.mark(platform="telegram", message_id="m2", status="dropped", now=T0)

    expected = [m for m in reversed(messages) if m.message_id not in {"m1", "m2", "m4"}]
    assert await inbox.unhandled() == expected
    assert await inbox.unhandled(limit=2) == expected[:2]
    assert await inbox.unhandled(limit=0) == []
