"""``remember`` and ``recall`` (low): notes kept per conversation.

A note belongs to the conversation it was taken in (``str(ToolContext.conversation)``):
one chat can never read another's notes, whatever the model asks for. The store caps
notes per conversation and drops the oldest (``core.storage.notes_repo``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from typing import Any

from core.errors import ToolError
from core.ports import Note, NotesStore
from core.tools.current_time import Clock, utc_now
from core.types import SecurityLevel, ToolContext

NOTE_MAX_CHARS = 2000
RECALL_DEFAULT_LIMIT = 10
RECALL_MAX_LIMIT = 50


class Remember:
    """Keeps a note for later turns of this conversation."""

    name = "remember"
    description = (
        "Save a short note for later in this conversation (facts, preferences, to-dos). "
        "Notes are kept per conversation; the oldest are dropped beyond a limit."
    )
    parameters: Mapping[str, Any] = {
        "type": "object",
        "properties": {
            "text": {
                "type": "string",
                "minLength": 1,
                "maxLength": NOTE_MAX_CHARS,
                "description": "what to remember",
            }
        },
        "required": ["text"],
        "additionalProperties": False,
    }
    level = SecurityLevel.LOW

    def __init__(self, *, notes: NotesStore, clock: Clock = utc_now) -> None:
        self._notes = notes
        self._clock = clock

    async def run(self, arguments: Mapping[str, Any], *, context: ToolContext) -> str:
        """Store the note; answers with its number."""
        text = str(arguments["text"]).strip()
        if not text:
            raise ToolError("remember: arguments.text: must not be blank", tool=self.name)
        note = await self._notes.add(
            conversation=str(context.conversation), text=text, created_at=self._clock()
        )
        return f"Remembered as note #{note.id}."


class Recall:
    """Finds notes taken earlier in this conversation."""

    name = "recall"
    description = (
        "Read notes saved earlier in this conversation with 'remember', newest first. "
        "Optional 'query' keeps only notes containing every word of it (any case)."
    )
    parameters: Mapping[str, Any] = {
        "type": "object",
        "properties": {
            "query": {"type": "string", "maxLength": 200, "description": "words to look for"},
            "limit": {
                "type": "integer",
                "minimum": 1,
                "maximum": RECALL_MAX_LIMIT,
                "description": f"most notes to return (default {RECALL_DEFAULT_LIMIT})",
            },
        },
        "additionalProperties": False,
    }
    level = SecurityLevel.LOW

    def __init__(self, *, notes: NotesStore) -> None:
        self._notes = notes

    async def run(self, arguments: Mapping[str, Any], *, context: ToolContext) -> str:
        """One line per note: ``#id (YYYY-MM-DD HH:MM UTC): text``."""
        query = str(arguments.get("query") or "").strip() or None
        limit = int(arguments.get("limit", RECALL_DEFAULT_LIMIT))
        found = await self._notes.search(
            conversation=str(context.conversation), query=query, limit=limit
        )
        if not found:
            if query:
                return f"No notes in this conversation match {query!r}."
            return "No notes in this conversation yet."
        return "\n".join(_line(note) for note in found)


def _line(note: Note) -> str:
    return f"#{note.id} ({note.created_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC): {note.text}"
