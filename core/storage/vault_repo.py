"""Every SQL statement of the vault. Rows go in and out as frozen records, never ORM objects.

The repository stores only what ``core.security.vault`` already encrypted; it never sees
a clear value or a key.

Writers that race (the gateway storing a provider key while ``switchboard vault rotate``
runs in another process) are kept apart by the meta row: each write transaction starts
by updating it, which takes the row lock on PostgreSQL and the write lock on SQLite,
and checks ``key_version`` in the same statement. A writer whose view is stale gets
``VaultChanged`` and nothing is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import VaultError
from core.storage.db import Database, rowcount
from core.storage.models import VaultMetaRow, VaultSecretRow

_META_ID = 1


class VaultChanged(VaultError):
    """Another process rotated the vault or changed its entries meanwhile; nothing was written."""

    code = "vault_changed"
    http_status = 409

    def __init__(self) -> None:
        super().__init__(
            "the vault was changed by another process meanwhile; nothing was written, try again"
        )


@dataclass(frozen=True, slots=True)
class VaultMetaRecord:
    """The vault's settings row: KDF parameters, salt and the wrapped data key."""

    kdf: str
    scrypt_n: int
    scrypt_r: int
    scrypt_p: int
    salt: bytes = field(repr=False)
    wrapped_key: bytes = field(repr=False)
    wrap_nonce: bytes = field(repr=False)
    key_version: int
    created_at: datetime
    rotated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SecretRecord:
    """One encrypted entry as stored; ``key_version`` names the data key that sealed it."""

    name: str
    nonce: bytes = field(repr=False)
    ciphertext: bytes = field(repr=False)
    key_version: int
    created_at: datetime
    updated_at: datetime


class VaultRepository:
    """Reads and writes ``vault_meta`` and ``vault_secrets``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_meta(self) -> VaultMetaRecord | None:
        """The settings row, or ``None`` for a vault never opened."""
        async with self._db.session() as session:
            row = await session.get(VaultMetaRow, _META_ID)
            return _meta_record(row) if row is not None else None

    async def insert_meta_if_absent(self, meta: VaultMetaRecord) -> VaultMetaRecord:
        """Store ``meta`` unless a settings row exists; returns the row that is stored.

        Two processes initializing an empty vault at once both get the winner's row back
        (compare ``salt`` to know whether yours won): the insert is an
        ``ON CONFLICT DO NOTHING`` on the pinned id, and the read comes after its commit.
        """
        values = _meta_values(meta) | {"id": _META_ID}
        statement = (
            self._db.insert(VaultMetaRow)
            .values(values)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        async with self._db.transaction() as session:
            await session.execute(statement)
        stored = await self.get_meta()
        if stored is None:  # only if someone deleted the row between the two statements
            raise VaultChanged()
        return stored

    async def get_secret(self, name: str) -> SecretRecord | None:
        """One entry, or ``None``."""
        async with self._db.session() as session:
            row = await session.get(VaultSecretRow, name)
            return _secret_record(row) if row is not None else None

    async def list_secrets(self) -> list[SecretRecord]:
        """Every entry, ordered by name."""
        async with self._db.session() as session:
            rows = (await session.scalars(select(VaultSecretRow))).all()
        return sorted((_secret_record(row) for row in rows), key=lambda record: record.name)

    async def list_names(self) -> list[str]:
        """Every entry name, sorted by code point (not by the database's collation)."""
        async with self._db.session() as session:
            names = (await session.scalars(select(VaultSecretRow.name))).all()
        return sorted(names)

    async def upsert_secret(self, record: SecretRecord) -> None:
        """Insert or replace one entry (``created_at`` of an existing entry is kept).

        Raises ``VaultChanged`` when the vault's current ``key_version`` is not the one
        ``record`` was encrypted under.
        """
        async with self._db.transaction() as session:
            await self._lock_meta(session, expected_key_version=record.key_version)
            await self._upsert(session, record)

    async def delete_secret(self, name: str) -> bool:
        """Remove one entry; ``False`` when there was none."""
        async with self._db.transaction() as session:
            await self._lock_meta(session, expected_key_version=None)
            result = await session.execute(
                delete(VaultSecretRow).where(VaultSecretRow.name == name)
            )
            return rowcount(result) > 0

    async def replace_all(
        self,
        meta: VaultMetaRecord,
        secrets: Sequence[SecretRecord],
        *,
        expected_key_version: int,
        expected_nonces: Mapping[str, bytes],
    ) -> None:
        """Rewrite the settings row and make ``secrets`` the whole set of entries, atomically.

        ``expected_key_version`` and ``expected_nonces`` (name -> nonce of every entry the
        caller read) describe the state the caller started from; if the database holds
        anything else, ``VaultChanged`` is raised and nothing changes. A failure at any
        point rolls the whole transaction back, so the old keys keep working.
        """
        async with self._db.transaction() as session:
            result = await session.execute(
                update(VaultMetaRow)
                .where(VaultMetaRow.id == _META_ID)
                .where(VaultMetaRow.key_version == expected_key_version)
                .values(_meta_values(meta))
            )
            if rowcount(result) != 1:
                raise VaultChanged()
            stored = await session.execute(select(VaultSecretRow.name, VaultSecretRow.nonce))
            if {name: bytes(nonce) for name, nonce in stored.all()} != dict(expected_nonces):
                raise VaultChanged()
            names = [record.name for record in secrets]
            await session.execute(delete(VaultSecretRow).where(VaultSecretRow.name.not_in(names)))
            for record in secrets:
                await self._upsert(session, record)

    async def _lock_meta(self, session: AsyncSession, *, expected_key_version: int | None) -> None:
        # A no-op UPDATE: its lock serializes this transaction with a concurrent rotate,
        # and being the first statement lets SQLite wait for the lock instead of failing.
        statement = (
            update(VaultMetaRow)
            .where(VaultMetaRow.id == _META_ID)
            .values(key_version=VaultMetaRow.key_version)
        )
        if expected_key_version is not None:
            statement = statement.where(VaultMetaRow.key_version == expected_key_version)
        result = await session.execute(statement)
        if rowcount(result) != 1:
            raise VaultChanged()

    async def _upsert(self, session: AsyncSession, record: SecretRecord) -> None:
        values = _secret_values(record)
        statement = self._db.insert(VaultSecretRow).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=["name"],
            set_={
                "nonce": statement.excluded.nonce,
                "ciphertext": statement.excluded.ciphertext,
                "key_version": statement.excluded.key_version,
                "updated_at": statement.excluded.updated_at,
            },
        )
        await session.execute(statement)


def _meta_values(meta: VaultMetaRecord) -> dict[str, Any]:
    return {
        "kdf": meta.kdf,
        "scrypt_n": meta.scrypt_n,
        "scrypt_r": meta.scrypt_r,
        "scrypt_p": meta.scrypt_p,
        "salt": meta.salt,
        "wrapped_key": meta.wrapped_key,
        "wrap_nonce": meta.wrap_nonce,
        "key_version": meta.key_version,
        "created_at": meta.created_at,
        "rotated_at": meta.rotated_at,
    }


def _secret_values(record: SecretRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "nonce": record.nonce,
        "ciphertext": record.ciphertext,
        "key_version": record.key_version,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def _meta_record(row: VaultMetaRow) -> VaultMetaRecord:
    return VaultMetaRecord(
        kdf=row.kdf,
        scrypt_n=row.scrypt_n,
        scrypt_r=row.scrypt_r,
        scrypt_p=row.scrypt_p,
        salt=bytes(row.salt),
        wrapped_key=bytes(row.wrapped_key),
        wrap_nonce=bytes(row.wrap_nonce),
        key_version=row.key_version,
        created_at=row.created_at,
        rotated_at=row.rotated_at,
    )


def _secret_record(row: VaultSecretRow) -> SecretRecord:
    return SecretRecord(
        name=row.name,
        nonce=bytes(row.nonce),
        ciphertext=bytes(row.ciphertext),
        key_version=row.key_version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
