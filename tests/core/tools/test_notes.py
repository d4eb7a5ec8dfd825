"""remember / recall over the real repository, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.config import ToolsSection, ToolSwitch
from core.errors import ToolError
from core.storage import Database
from core.storage.notes_repo import NotesRepository
from core.tools import Recall, Remember, ToolRegistry, build_tools
from core.types import ToolContext
from tests.core.tools.conftest import make_context

START = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


class StepClock:
    """A clock one minute further on every call."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


def registry(notes: NotesRepository) -> ToolRegistry:
    settings = ToolsSection(remember=ToolSwitch(enabled=True), recall=ToolSwitch(enabled=True))
    return build_tools(settings, notes=notes, clock=StepClock())


async def test_a_note_is_recalled_in_its_conversation(migrated_db: Database) -> None:
    tools = registry(NotesRepository(migrated_db))
    here = make_context("42")
    answer = await tools.run("remember", {"text": "  Alice prefers tea  "}, context=here)
    assert answer.startswith("Remembered as note #")
    await tools.run("remember", {"text": "Standup moved to 10:15"}, context=here)

    recalled = await tools.run("recall", {}, context=here)
    lines = recalled.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("(2026-12-02 09:02 UTC): Standup moved to 10:15")  # newest first
    assert lines[1].endswith("(2026-12-02 09:01 UTC): Alice prefers tea")  # stripped


async def test_notes_are_scoped_per_conversation(migrated_db: Database) -> None:
    tools = registry(NotesRepository(migrated_db))
    note = {"text": "the vault code is in drawer 3"}
    await tools.run("remember", note, context=make_context("1"))
    other = make_context("2")
    assert await tools.run("recall", {}, context=other) == "No notes in this conversation yet."
    assert (
        await tools.run("recall", {"query": "vault"}, context=other)
        == "No notes in this conversation match 'vault'."
    )
    # Same chat id on another platform is another conversation too.
    slack = make_context("1", platform="slack")
    assert await tools.run("recall", {}, context=slack) == "No notes in this conversation yet."


async def test_a_query_keeps_notes_with_every_word_in_any_case(migrated_db: Database) -> None:
    tools = registry(NotesRepository(migrated_db))
    here = make_context()
    for text in ["Buy Oat milk", "buy bread", "oat cookies", "100% sure", "a_b literal"]:
        await tools.run("remember", {"text": text}, context=here)

    assert (await tools.run("recall", {"query": "OAT buy"}, context=here)).endswith("Buy Oat milk")
    assert len((await tools.run("recall", {"query": "oat"}, context=here)).splitlines()) == 2
    # % and _ are characters, not SQL wildcards.
    assert (await tools.run("recall", {"query": "0%"}, context=here)).endswith("100% sure")
    assert "No notes" in await tools.run("recall", {"query": "a%b"}, context=here)
    assert (await tools.run("recall", {"query": "a_b"}, context=here)).endswith("a_b literal")
    assert "No notes" in await tools.run("recall", {"query": "axb"}, context=here)


async def test_recall_honours_the_limit(migrated_db: Database) -> None:
    tools = registry(NotesRepository(migrated_db))
    here = make_context()
    for number in range(12):
        await tools.run("remember", {"text": f"note {number}"}, context=here)
    assert len((await tools.run("recall", {}, context=here)).splitlines()) == 10  # default
    three = (await tools.run("recall", {"limit": 3}, context=here)).splitlines()
    assert [line.rsplit(": ", 1)[1] for line in three] == ["note 11", "note 10", "note 9"]
    with pytest.raises(ToolError, match=r"arguments.limit: 51 is greater than the maximum of 50"):
        await tools.run("recall", {"limit": 51}, context=here)


async def test_the_oldest_notes_are_dropped_beyond_the_cap(migrated_db: Database) -> None:
    notes = NotesRepository(migrated_db, max_per_conversation=3)
    tools = registry(notes)
    here, other = make_context("full"), make_context("other")
    await tools.run("remember", {"text": "other conversation"}, context=other)
    for number in range(5):
        await tools.run("remember", {"text": f"note {number}"}, context=here)

    assert await notes.count(conversation=str(here.conversation)) == 3
    kept = await notes.search(conversation=str(here.conversation), limit=50)
    assert [note.text for note in kept] == ["note 4", "note 3", "note 2"]
    assert await notes.count(conversation=str(other.conversation)) == 1


async def test_a_blank_note_is_refused(migrated_db: Database, context: ToolContext) -> None:
    notes = NotesRepository(migrated_db)
    with pytest.raises(ToolError, match="must not be blank"):
        await Remember(notes=notes).run({"text": "   "}, context=context)
    recalled = await Recall(notes=notes).run({}, context=context)
    assert recalled == "No notes in this conversation yet."


def test_the_cap_must_be_positive(migrated_db: Database) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        NotesRepository(migrated_db, max_per_conversation=0)
