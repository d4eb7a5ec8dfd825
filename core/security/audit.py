"""The tamper-evident audit log: every record is chained to the one before it by SHA-256.

A record is ``seq`` (1, 2, 3, ... without gaps), ``at`` (UTC, microseconds), ``kind``
(``config.applied``, ``vault.get``...), ``actor``, ``conversation``, ``action_id``, ``data``
(a JSON object) and ``prev_hash``, the hash of record ``seq - 1`` (64 zeros for the first).
Its ``hash`` is the SHA-256 hex digest of the canonical JSON of those eight fields::

    json.dumps({"seq", "at", "kind", "actor", "conversation", "action_id", "data",
                "prev_hash"}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

with ``at`` written as ISO 8601 with microseconds and ``+00:00``. ``verify`` recomputes
every hash and link in ``seq`` order and names the first record that does not fit.

What the chain catches: a record changed in place (its hash no longer matches), a record
deleted (a gap in ``seq``), records reordered or swapped (the links break), a record
inserted in the middle (the next record's ``prev_hash`` no longer links), a forged hash.

What it does not catch on its own: someone with write access to the database who
rewrites every record from some point on and recomputes their hashes, or who deletes the
newest records (truncation), leaves a chain that verifies. The hashes are not secret and
not signed. Against that, pin the head: copy ``head()`` (``switchboard audit tail -n 1``,
the last record's ``seq`` and ``hash``) somewhere the database's writers cannot change
(another host, a ticket, a write-once bucket) and check later that the record with that
``seq`` still has that hash and that ``verify`` is ok.

Secrets never enter a record: before hashing, ``actor`` and every string in ``data``
(keys too, recursively) pass through ``redact`` (the gateway passes the redactor that
knows every resolved secret), and the value of any key that names a secret
(``api_key``, ``token``, ``password``, ``secret``, ``authorization``, ``passphrase``,
anywhere in the key, any case) is replaced by ``[redacted]``. Token *counts*
(``input_tokens``, ``output_tokens``, ``max_tokens``..., listed in ``TOKEN_COUNT_KEYS``)
are usage figures, not credentials, and stay readable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.errors import StorageError
from core.storage.audit_repo import (
    GENESIS_HASH,
    AuditRecord,
    AuditRecordCorrupt,
    AuditRepository,
    canonical_json,
)

__all__ = ["GENESIS_HASH", "AuditLog", "AuditRecord", "AuditVerdict", "record_hash", "record_json"]

MASK = "[redacted]"
# Substrings of a data key whose value is masked whatever it is (a nested object too).
SECRET_KEY_PARTS = ("api_key", "token", "password", "secret", "authorization", "passphrase")
# Usage figures whose names happen to contain "token"; "access_tokens" still masks.
TOKEN_COUNT_KEYS = frozenset(
    {"tokens", "input_tokens", "output_tokens", "total_tokens", "max_tokens"}
    | {"prompt_tokens", "completion_tokens"}
)
# Column widths of audit_log; PostgreSQL would refuse longer values mid-transaction.
_MAX_KIND, _MAX_ACTOR, _MAX_CONVERSATION, _MAX_ACTION_ID = 64, 256, 512, 64


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class AuditVerdict:
    """Outcome of ``AuditLog.verify``: ``first_bad_seq`` and ``problem`` are set when not ok."""

    ok: bool
    count: int
    first_bad_seq: int | None = None
    problem: str | None = None


def _timestamp(at: datetime) -> str:
    # Always six fractional digits: isoformat() drops them when microsecond == 0.
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def record_hash(
    *,
    seq: int,
    at: datetime,
    kind: str,
    actor: str | None,
    conversation: str | None,
    action_id: str | None,
    data: Mapping[str, Any],
    prev_hash: str,
) -> str:
    """The SHA-256 hex digest of a record's canonical JSON (everything but its own hash)."""
    body = {
        "seq": seq,
        "at": _timestamp(at),
        "kind": kind,
        "actor": actor,
        "conversation": conversation,
        "action_id": action_id,
        "data": data,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def _hash_of(record: AuditRecord) -> str:
    return record_hash(
        seq=record.seq,
        at=record.at,
        kind=record.kind,
        actor=record.actor,
        conversation=record.conversation,
        action_id=record.action_id,
        data=record.data,
        prev_hash=record.prev_hash,
    )


def record_json(record: AuditRecord) -> dict[str, Any]:
    """A record as the CLI's ``--json`` and the API show it."""
    return {
        "seq": record.seq,
        "at": _timestamp(record.at),
        "kind": record.kind,
        "actor": record.actor,
        "conversation": record.conversation,
        "action_id": record.action_id,
        "data": record.data,
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }


def _is_secret_key(key: str) -> bool:
    folded = key.lower().replace("-", "_")
    if folded in TOKEN_COUNT_KEYS:
        return False
    return any(part in folded for part in SECRET_KEY_PARTS)


def _checked(name: str, value: str | None, limit: int) -> str | None:
    if value is not None and len(value) > limit:
        raise ValueError(f"audit {name} is longer than {limit} characters")
    return value


class AuditLog:
    """Appends records to the chain, verifies it, and reads it back."""

    def __init__(
        self,
        repo: AuditRepository,
        *,
        clock: Callable[[], datetime] = _utc_now,
        redact: Callable[[str], str] = lambda s: s,
    ) -> None:
        self._repo = repo
        self._clock = clock
        self._redact = redact

    async def append(
        self,
        kind: str,
        *,
        actor: str | None = None,
        conversation: str | None = None,
        action_id: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> AuditRecord:
        """Add one record at the end of the chain; safe with concurrent writers anywhere.

        ``data`` must be JSON-like (mappings, lists, strings, numbers, booleans, None);
        anything else is stored as its ``str()``. Secrets are masked first (module doc).
        """
        if not kind:
            raise ValueError("audit kind must not be empty")
        _checked("kind", kind, _MAX_KIND)
        _checked("conversation", conversation, _MAX_CONVERSATION)
        _checked("action_id", action_id, _MAX_ACTION_ID)
        clean_actor = self._text(actor) if actor is not None else None
        _checked("actor", clean_actor, _MAX_ACTOR)
        clean_data = self._clean_mapping(data or {})

        def make(seq: int, prev_hash: str) -> AuditRecord:
            # The clock is read under the append lock, so ``at`` never runs backwards along
            # ``seq``. Truncated to what both databases store (microseconds, UTC), so the
            # hash covers exactly the value that is read back.
            at = self._clock().astimezone(UTC)
            fields: dict[str, Any] = {
                "seq": seq,
                "at": at,
                "kind": kind,
                "actor": clean_actor,
                "conversation": conversation,
                "action_id": action_id,
                "data": clean_data,
                "prev_hash": prev_hash,
            }
            return AuditRecord(**fields, hash=record_hash(**fields))

        return await self._repo.append(make)

    async def verify(self) -> AuditVerdict:
        """Recompute every hash and link, streaming in ``seq`` order; name the first bad record."""
        expected_seq, prev_hash = 1, GENESIS_HASH
        try:
            async for record in self._repo.iterate():
                problem = _problem(record, expected_seq=expected_seq, prev_hash=prev_hash)
                if problem is not None:
                    return await self._broken(record.seq, problem)
                expected_seq, prev_hash = record.seq + 1, record.hash
        except AuditRecordCorrupt as exc:
            return await self._broken(exc.seq, exc.problem)
        return AuditVerdict(ok=True, count=expected_seq - 1)

    async def head(self) -> AuditRecord | None:
        """The newest record (the value to pin outside the database), or None when empty."""
        newest = await self._repo.tail(1)
        return newest[0] if newest else None

    async def tail(self, n: int) -> list[AuditRecord]:
        """The newest ``n`` records, oldest first."""
        return await self._repo.tail(n)

    async def page(
        self, *, after_seq: int = 0, limit: int = 100, kind: str | None = None
    ) -> list[AuditRecord]:
        """Up to ``limit`` records after ``after_seq`` (of one ``kind`` if given), oldest first."""
        return await self._repo.page(after_seq=after_seq, limit=limit, kind=kind)

    async def _broken(self, seq: int, problem: str) -> AuditVerdict:
        try:
            count = await self._repo.count()
        except StorageError:
            count = 0  # the verdict matters more than the total; the scan already failed
        return AuditVerdict(ok=False, count=count, first_bad_seq=seq, problem=problem)

    def _text(self, value: str) -> str:
        value = self._redact(value)
        # PostgreSQL text cannot hold NUL, and lone surrogates cannot be hashed as UTF-8:
        # replaced rather than refused, so an odd input never loses its audit record.
        if "\x00" in value:
            value = value.replace("\x00", "\ufffd")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "replace").decode("utf-8")
        return value

    def _clean_mapping(self, data: Mapping[Any, Any]) -> dict[str, Any]:
        clean: dict[str, Any] = {}
        for key, value in data.items():
            name = self._text(str(key))
            clean[name] = MASK if _is_secret_key(str(key)) else self._clean(value)
        return clean

    def _clean(self, value: Any) -> Any:
        if value is None or isinstance(value, bool | int):
            return value
        if isinstance(value, float):
            # NaN and infinities have no JSON spelling.
            return value if value == value and abs(value) != float("inf") else str(value)
        if isinstance(value, str):
            return self._text(value)
        if isinstance(value, Mapping):
            return self._clean_mapping(value)
        if isinstance(value, list | tuple | set | frozenset):
            items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
            return [self._clean(item) for item in items]
        return self._text(str(value))


def _problem(record: AuditRecord, *, expected_seq: int, prev_hash: str) -> str | None:
    """What is wrong with ``record`` at this point of the chain, or None."""
    if record.seq > expected_seq:
        if record.seq == expected_seq + 1:
            return f"record {expected_seq} is missing"
        return f"records {expected_seq} to {record.seq - 1} are missing"
    if record.seq < expected_seq:
        return f"unexpected seq {record.seq} (records start at 1)"
    if record.prev_hash != prev_hash:
        before = f"record {record.seq - 1}" if record.seq > 1 else "the start of the chain"
        return f"prev_hash does not link to {before} (record moved, replaced or inserted)"
    if _hash_of(record) != record.hash:
        return "hash does not match its contents"
    return None
