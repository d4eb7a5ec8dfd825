"""Every SQL statement of the ``remember`` / ``recall`` notes (the ``notes`` table).

Notes are scoped by conversation (``str(ConversationKey)``) and capped per conversation:
adding a note beyond the cap drops the oldest ones in the same transaction, so a chatty
conversation cannot grow the table without bound. "Oldest" is insertion order (the
autoincrement id), not ``created_at``, because the clock is injected and may stand still.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select

from core.ports import Note
from core.storage.db import Database
from core.storage.models import NoteRow

DEFAULT_MAX_NOTES_PER_CONVERSATION = 500


class NotesRepository:
    """Reads and writes ``notes``; satisfies ``core.ports.NotesStore``."""

    def __init__(
        self, db: Database, *, max_per_conversation: int = DEFAULT_MAX_NOTES_PER_CONVERSATION
    ) -> None:
        if max_per_conversation < 1:
            raise ValueError("max_per_conversation must be at least 1")
        self._db = db
        self._cap = max_per_conversation

    async def add(self, *, conversation: str, text: str, created_at: datetime) -> Note:
        """Store a note, then drop the conversation's oldest notes beyond the cap."""
        row = NoteRow(conversation=conversation, text=text, created_at=created_at)
        async with self._db.transaction() as session:
            session.add(row)
            await session.flush()  # assigns row.id
            newest = (
                select(NoteRow.id)
                .where(NoteRow.conversation == conversation)
                .order_by(NoteRow.id.desc())
                .limit(self._cap)
            )
            await session.execute(
                delete(NoteRow)
                .where(NoteRow.conversation == conversation)
                .where(NoteRow.id.not_in(newest.scalar_subquery()))
            )
        return _note(row)

    async def search(
        self, *, conversation: str, query: str | None = None, limit: int = 10
    ) -> list[Note]:
        """Newest first; with ``query``, only notes containing every word of it (any case)."""
        statement = select(NoteRow).where(NoteRow.conversation == conversation)
        for word in (query or "").split():
            # autoescape: a % or _ the model typed is a character, not a wildcard.
            statement = statement.where(
                func.lower(NoteRow.text).contains(word.lower(), autoescape=True)
            )
        statement = statement.order_by(NoteRow.id.desc()).limit(max(limit, 0))
        async with self._db.session() as session:
            rows = (await session.scalars(statement)).all()
        return [_note(row) for row in rows]

    async def count(self, *, conversation: str) -> int:
        """How many notes a conversation has."""
        statement = (
            select(func.count()).select_from(NoteRow).where(NoteRow.conversation == conversation)
        )
        async with self._db.session() as session:
            return int((await session.execute(statement)).scalar_one())


def _note(row: NoteRow) -> Note:
    return Note(id=row.id, conversation=row.conversation, text=row.text, created_at=row.created_at)
