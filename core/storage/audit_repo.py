"""Every SQL statement of the audit log. Records go in and out as frozen ``AuditRecord``s.

The repository knows how records are stored and ordered, not how they are hashed: the
chain rule lives in ``core.security.audit``, which hands ``append`` a callback that builds
the whole record once the next ``seq`` and the previous hash are known.

Appends from any number of processes stay one chain: the read of the last record and the
insert of the next run in one ``Database.exclusive_transaction`` on ``AUDIT_LOCK_KEY``
(a PostgreSQL advisory transaction lock; ``BEGIN IMMEDIATE`` on SQLite), so no two
writers ever see the same last record. Inside one process appends also queue on an
``asyncio.Lock`` first, so waiting writers do not each hold a pooled connection while the
database lock is taken.

Group commit: appends that arrive while another one is being written wait for the lock
together, and the next holder writes all of them in one transaction (one fsync instead of
one each). Every ``append`` still returns only once its own record is committed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, func, insert, select

from core.errors import StorageError
from core.storage.db import Database
from core.storage.models import AuditRow

# Key of the advisory lock that serializes appends across processes. Any fixed 64-bit
# value works as long as it differs from migrations.MIGRATION_LOCK_KEY ("SWBOARD1").
AUDIT_LOCK_KEY = 0x5357_4241_5544_4954  # "SWBAUDIT"

# The hash of "no previous record": the prev_hash of seq 1.
GENESIS_HASH = "0" * 64


class AuditRecordCorrupt(StorageError):
    """A stored audit record cannot even be decoded (its data is not a JSON object)."""

    code = "audit_record_corrupt"
    http_status = 500

    def __init__(self, seq: int, problem: str) -> None:
        super().__init__(f"audit record {seq} is corrupt: {problem}")
        self.seq = seq
        self.problem = problem


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One link of the chain: what happened, and the hashes that bind it to its place."""

    seq: int
    at: datetime
    kind: str
    actor: str | None
    conversation: str | None
    action_id: str | None
    data: dict[str, Any]
    prev_hash: str
    hash: str


# The columns of one record, in the order _records() selects them.
_RecordSelect = Select[int, datetime, str, str | None, str | None, str | None, str, str, str]
_RecordRow = Row[int, datetime, str, str | None, str | None, str | None, str, str, str]

RecordFactory = Callable[[int, str], AuditRecord]
"""``make(seq, prev_hash)``: the complete record to store at ``seq``, hash included."""


def canonical_json(value: Any) -> str:
    """The one JSON spelling of ``value``: sorted keys, no spaces, UTF-8 text, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


class AuditRepository:
    """Reads and appends ``audit_log``; records are never updated or deleted here."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._append_lock = asyncio.Lock()
        # Records waiting for the next holder of the lock to write them.
        self._pending: list[tuple[RecordFactory, asyncio.Future[AuditRecord]]] = []

    async def append(self, make: RecordFactory) -> AuditRecord:
        """Store ``make(last seq + 1, last hash)`` as the new last record, and return it.

        ``make`` runs inside the locked transaction, so what it computes (the hash, the
        timestamp) belongs to exactly the place the record takes in the chain.
        """
        mine: asyncio.Future[AuditRecord] = asyncio.get_running_loop().create_future()
        self._pending.append((make, mine))
        async with self._append_lock:
            if not mine.done():  # else an earlier holder wrote it with its own
                batch, self._pending = self._pending, []
                try:
                    records = await self._write(batch)
                except asyncio.CancelledError:
                    # This caller is going away; the others' records go to the next holder.
                    self._pending[:0] = [(m, f) for m, f in batch if f is not mine]
                    raise
                except Exception as exc:
                    for _, waiting in batch:
                        if waiting is not mine:
                            waiting.set_exception(exc)
                    raise
                for (_, waiting), record in zip(batch, records, strict=True):
                    waiting.set_result(record)
        return mine.result()

    async def _write(
        self, batch: list[tuple[RecordFactory, asyncio.Future[AuditRecord]]]
    ) -> list[AuditRecord]:
        async with self._db.exclusive_transaction(lock_key=AUDIT_LOCK_KEY) as conn:
            last = (
                await conn.execute(
                    select(AuditRow.seq, AuditRow.hash).order_by(AuditRow.seq.desc()).limit(1)
                )
            ).first()
            seq, prev_hash = (1, GENESIS_HASH) if last is None else (last.seq + 1, last.hash)
            records = []
            for make, _ in batch:
                record = make(seq, prev_hash)
                if record.seq != seq or record.prev_hash != prev_hash:
                    raise ValueError(
                        "the record factory must use the seq and prev_hash it was given"
                    )
                records.append(record)
                seq, prev_hash = seq + 1, record.hash
            await conn.execute(insert(AuditRow), [_values(record) for record in records])
        return records

    async def page(
        self, *, after_seq: int = 0, limit: int = 100, kind: str | None = None
    ) -> list[AuditRecord]:
        """Up to ``limit`` records after ``after_seq`` (of one ``kind`` if given), oldest first."""
        statement = _records().where(AuditRow.seq > after_seq)
        if kind is not None:
            statement = statement.where(AuditRow.kind == kind)
        return await self._fetch(statement.order_by(AuditRow.seq).limit(limit))

    async def tail(self, n: int) -> list[AuditRecord]:
        """The newest ``n`` records, oldest first."""
        newest = await self._fetch(_records().order_by(AuditRow.seq.desc()).limit(max(n, 0)))
        return newest[::-1]

    async def iterate(self, *, batch: int = 1000) -> AsyncIterator[AuditRecord]:
        """Every record in ``seq`` order, ``batch`` rows per query (memory stays bounded).

        Keyset paging (``seq > last``) rather than one long cursor: no transaction stays
        open across the whole scan, and appends meanwhile are simply read at the end.
        """
        after = None
        while True:
            statement = _records()
            if after is not None:
                statement = statement.where(AuditRow.seq > after)
            rows = await self._rows(statement.order_by(AuditRow.seq).limit(batch))
            for row in rows:
                # Decoded one by one: a corrupt row is raised only after every record
                # before it was yielded, so a verifier still names the first bad one.
                yield _record(row)
            if len(rows) < batch:
                return
            after = rows[-1].seq

    async def count(self) -> int:
        """How many records are stored."""
        async with self._db.session() as session:
            return int(await session.scalar(select(func.count()).select_from(AuditRow)) or 0)

    async def _fetch(self, statement: _RecordSelect) -> list[AuditRecord]:
        return [_record(row) for row in await self._rows(statement)]

    async def _rows(self, statement: _RecordSelect) -> list[_RecordRow]:
        async with self._db.session() as session:
            return list((await session.execute(statement)).all())


def _records() -> _RecordSelect:
    # Columns, not ORM objects: nothing is tracked by the session, and a scan of a
    # million rows builds only the frozen records.
    return select(
        AuditRow.seq,
        AuditRow.at,
        AuditRow.kind,
        AuditRow.actor,
        AuditRow.conversation,
        AuditRow.action_id,
        AuditRow.data,
        AuditRow.prev_hash,
        AuditRow.hash,
    )


def _values(record: AuditRecord) -> dict[str, Any]:
    return {
        "seq": record.seq,
        "at": record.at,
        "kind": record.kind,
        "actor": record.actor,
        "conversation": record.conversation,
        "action_id": record.action_id,
        "data": canonical_json(record.data),
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }


def _record(row: _RecordRow) -> AuditRecord:
    try:
        data = json.loads(row.data)
    except (TypeError, ValueError) as exc:
        raise AuditRecordCorrupt(row.seq, f"data is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise AuditRecordCorrupt(row.seq, "data is not a JSON object")
    return AuditRecord(
        seq=row.seq,
        at=row.at,
        kind=row.kind,
        actor=row.actor,
        conversation=row.conversation,
        action_id=row.action_id,
        data=data,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )
