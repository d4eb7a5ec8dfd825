"""Conversations and their history, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select

from core.storage import Database
from core.storage.conversation_repo import ConversationRepository
from core.storage.models import ConversationMessageRow, ConversationRow
from core.storage.paging import PagePosition
from core.types import ChatMessage, ConversationKey, Role, ToolCall

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
TELEGRAM = ConversationKey(platform="telegram", chat="42")
SLACK_THREAD = ConversationKey(platform="slack", chat="C1", thread="1700.1")


def user(text: str) -> ChatMessage:
    return ChatMessage(role=Role.USER, content=text)


async def test_append_then_recent_gives_the_newest_oldest_first(migrated_db: Database) -> None:
    repo = ConversationRepository(migrated_db)
    for n in range(5):
        await repo.append(TELEGRAM, [(user(f"m{n}"), n + 1)], action_id=None, now=T0)
    await repo.append(SLACK_THREAD, [(user("elsewhere"), 1)], action_id=None, now=T0)

    recent = await repo.recent(TELEGRAM, limit=3)
    assert [s.message.content for s in recent] == ["m2", "m3", "m4"]
    assert [s.tokens for s in recent] == [3, 4, 5]
    assert [s.id for s in recent] == sorted(s.id for s in recent)
    assert [s.message.content for s in await repo.recent(TELEGRAM, limit=100)] == [
        f"m{n}" for n in range(5)
    ]
    assert await repo.recent(TELEGRAM, limit=0) == []
    assert [s.message.content for s in await repo.recent(SLACK_THREAD, limit=10)] == ["elsewhere"]


async def test_append_keeps_the_order_of_one_batch_and_returns_what_it_stored(
    migrated_db: Database,
) -> None:
    repo = ConversationRepository(migrated_db)
    batch = [(user(f"b{n}"), 10 * n) for n in range(12)]
    stored = await repo.append(SLACK_THREAD, batch, action_id="act_1", now=T0)

    assert [s.message for s in stored] == [m for m, _ in batch]
    assert [s.id for s in stored] == sorted(s.id for s in stored)
    assert {s.action_id for s in stored} == {"act_1"}
    assert await repo.recent(SLACK_THREAD, limit=100) == stored
    state = await repo.get(SLACK_THREAD)
    assert state is not None
    assert state.key == SLACK_THREAD
    assert state.message_count == 12


async def test_tool_calls_round_trip_with_nested_arguments_and_unicode(
    migrated_db: Database,
) -> None:
    repo = ConversationRepository(migrated_db)
    call = ToolCall(
        id="call_1",
        name="http_get",
        arguments={
            "url": "https://example.org/ünï",
            "headers": {"Accept": ["text/html", "application/json"]},
            "options": {"retries": 2, "follow": True, "timeout": 1.5, "proxy": None},
            "note": "日本語 and emoji 🎉",
        },
    )
    second = ToolCall(id="call_2", name="current_time")
    assistant = ChatMessage(role=Role.ASSISTANT, content="", tool_calls=(call, second))
    result = ChatMessage(
        role=Role.TOOL, content="résultat 🎉", tool_call_id="call_1", name="http_get"
    )
    await repo.append(TELEGRAM, [(assistant, 7), (result, 3)], action_id="act_9", now=T0)

    loaded = await repo.recent(TELEGRAM, limit=10)
    assert [s.message for s in loaded] == [assistant, result]
    assert loaded[0].message.tool_calls[0].arguments["headers"]["Accept"][1] == "application/json"
    assert loaded[1].message.tool_calls == ()
    assert loaded[0].created_at == T0


async def test_replace_tool_result_changes_only_that_message_of_that_conversation(
    migrated_db: Database,
) -> None:
    repo = ConversationRepository(migrated_db)
    call = ToolCall(id="call_1", name="shell", arguments={"argv": ["ls"]})
    for key in (TELEGRAM, SLACK_THREAD):
        await repo.append(
            key,
            [
                (ChatMessage(role=Role.ASSISTANT, tool_calls=(call,)), 5),
                (ChatMessage(role=Role.TOOL, content="pending", tool_call_id="call_1"), 1),
                (ChatMessage(role=Role.TOOL, content="other", tool_call_id="call_2"), 1),
                # Same id, but not a tool message: left alone.
                (ChatMessage(role=Role.USER, content="mine", tool_call_id="call_1"), 1),
            ],
            action_id=None,
            now=T0,
        )
    later = T0 + timedelta(minutes=5)

    assert await repo.replace_tool_result(
        TELEGRAM, tool_call_id="call_1", content="file.txt", tokens=2, now=later
    )
    assert not await repo.replace_tool_result(
        TELEGRAM, tool_call_id="call_404", content="x", tokens=1, now=later
    )

    changed = await repo.recent(TELEGRAM, limit=10)
    assert [(s.message.content, s.tokens) for s in changed] == [
        ("", 5),
        ("file.txt", 2),
        ("other", 1),
        ("mine", 1),
    ]
    assert changed[1].message.tool_call_id == "call_1"
    untouched = await repo.recent(SLACK_THREAD, limit=10)
    assert [s.message.content for s in untouched] == ["", "pending", "other", "mine"]
    state = await repo.get(TELEGRAM)
    assert state is not None and state.updated_at == later


async def test_reset_deletes_history_and_overrides_but_keeps_the_row_and_others(
    migrated_db: Database,
) -> None:
    repo = ConversationRepository(migrated_db)
    await repo.append(TELEGRAM, [(user("a"), 1), (user("b"), 1)], action_id=None, now=T0)
    await repo.append(SLACK_THREAD, [(user("keep"), 1)], action_id=None, now=T0)
    await repo.set_overrides(TELEGRAM, provider="claude", model="opus", now=T0)
    await repo.set_overrides(SLACK_THREAD, provider="openai", model="gpt", now=T0)

    later = T0 + timedelta(hours=1)
    assert await repo.reset(TELEGRAM, now=later) == 2
    assert await repo.recent(TELEGRAM, limit=10) == []
    state = await repo.get(TELEGRAM)
    assert state is not None
    assert (state.provider, state.model, state.message_count) == (None, None, 0)
    assert state.created_at == T0
    assert state.updated_at == later

    other = await repo.get(SLACK_THREAD)
    assert other is not None
    assert (other.provider, other.model, other.message_count) == ("openai", "gpt", 1)
    assert [s.message.content for s in await repo.recent(SLACK_THREAD, limit=10)] == ["keep"]
    assert await repo.reset(TELEGRAM, now=later) == 0
    assert await repo.reset(ConversationKey(platform="discord", chat="1"), now=later) == 0
    assert await repo.get(ConversationKey(platform="discord", chat="1")) is None


async def test_set_overrides_creates_sets_both_and_clears(migrated_db: Database) -> None:
    repo = ConversationRepository(migrated_db)
    assert await repo.get(TELEGRAM) is None

    await repo.set_overrides(TELEGRAM, provider="claude", model=None, now=T0)
    state = await repo.get(TELEGRAM)
    assert state is not None
    assert (state.key, state.provider, state.model) == (TELEGRAM, "claude", None)
    assert state.created_at == state.updated_at == T0

    later = T0 + timedelta(seconds=30)
    await repo.set_overrides(TELEGRAM, provider=None, model="gpt-4o", now=later)
    state = await repo.get(TELEGRAM)
    assert state is not None
    assert (state.provider, state.model) == (None, "gpt-4o")
    assert (state.created_at, state.updated_at) == (T0, later)

    # Appending and ensuring leave the overrides alone.
    await repo.append(TELEGRAM, [(user("hi"), 1)], action_id=None, now=later)
    ensured = await repo.ensure(TELEGRAM, now=later)
    assert (ensured.provider, ensured.model, ensured.message_count) == (None, "gpt-4o", 1)


async def test_list_is_newest_updated_first_with_message_counts(migrated_db: Database) -> None:
    repo = ConversationRepository(migrated_db)
    discord = ConversationKey(platform="discord", chat="9")
    await repo.ensure(discord, now=T0)
    await repo.append(TELEGRAM, [(user("x"), 1)] * 3, action_id=None, now=T0 + timedelta(1))
    await repo.append(SLACK_THREAD, [(user("y"), 1)], action_id=None, now=T0 + timedelta(2))

    listed = await repo.list()
    assert [(s.key, s.message_count) for s in listed] == [
        (SLACK_THREAD, 1),
        (TELEGRAM, 3),
        (discord, 0),
    ]
    assert listed[0].key.thread == "1700.1"
    first = await repo.list(limit=1)
    after = PagePosition(at=first[0].updated_at, id=str(first[0].key))
    assert [s.key for s in await repo.list(limit=1, after=after)] == [TELEGRAM]

    # Activity moves a conversation to the front.
    await repo.ensure(discord, now=T0 + timedelta(3))
    assert [s.key for s in await repo.list(limit=2)] == [discord, SLACK_THREAD]


async def test_ensure_creates_once_then_bumps_updated_at(migrated_db: Database) -> None:
    repo = ConversationRepository(migrated_db)
    first = await repo.ensure(SLACK_THREAD, now=T0)
    assert first.key == SLACK_THREAD
    assert (first.provider, first.model, first.message_count) == (None, None, 0)
    assert first.created_at == first.updated_at == T0

    again = await repo.ensure(SLACK_THREAD, now=T0 + timedelta(minutes=1))
    assert again.created_at == T0
    assert again.updated_at == T0 + timedelta(minutes=1)


@pytest.mark.slow
async def test_fifty_concurrent_ensures_make_one_row(migrated_db: Database) -> None:
    repo = ConversationRepository(migrated_db)
    states = await asyncio.gather(*(repo.ensure(TELEGRAM, now=T0) for _ in range(50)))
    assert {s.key for s in states} == {TELEGRAM}
    async with migrated_db.session() as session:
        count = await session.scalar(select(func.count()).select_from(ConversationRow))
    assert count == 1


@pytest.mark.slow
async def test_concurrent_appends_to_a_new_conversation_lose_nothing(
    migrated_db: Database,
) -> None:
    repo = ConversationRepository(migrated_db)
    await asyncio.gather(
        *(repo.append(TELEGRAM, [(user(f"c{n}"), 1)], action_id=None, now=T0) for n in range(20))
    )
    contents = {s.message.content for s in await repo.recent(TELEGRAM, limit=100)}
    assert contents == {f"c{n}" for n in range(20)}
    state = await repo.get(TELEGRAM)
    assert state is not None and state.message_count == 20


async def test_deleting_a_conversation_row_cascades_to_its_messages(
    migrated_db: Database,
) -> None:
    repo = ConversationRepository(migrated_db)
    await repo.append(TELEGRAM, [(user("a"), 1)], action_id=None, now=T0)
    await repo.append(SLACK_THREAD, [(user("b"), 1)], action_id=None, now=T0)
    async with migrated_db.transaction() as session:
        await session.execute(delete(ConversationRow).where(ConversationRow.key == str(TELEGRAM)))
    async with migrated_db.session() as session:
        left = (await session.scalars(select(ConversationMessageRow.conversation))).all()
    assert left == [str(SLACK_THREAD)]
