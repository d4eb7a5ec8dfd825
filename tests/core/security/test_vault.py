"""The encrypted vault, on SQLite and PostgreSQL: round trips, secrecy at rest, tampering,
wrong passphrases, rotation (also interrupted), concurrent first opens, and names."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, func, select, update

from core.errors import SecretNotFound, VaultError, VaultKeyMismatch
from core.ports import SecretStore
from core.security import ScryptParams, Vault
from core.storage import Database, VaultChanged, VaultMetaRecord, VaultRepository
from core.storage.models import VaultMetaRow, VaultSecretRow
from tests.conftest import sqlite_path

CHEAP = ScryptParams(n=2**10, r=8, p=1)
PASSPHRASE = "correct horse battery staple"
# Distinctive enough that finding it anywhere in the database bytes means a leak.
CLEAR = "sk-live-Zq8VtX3pLmN7wR2yB5kD9fH4"


@pytest.fixture
def repo(migrated_db: Database) -> VaultRepository:
    return VaultRepository(migrated_db)


@pytest.fixture
async def vault(repo: VaultRepository) -> Vault:
    return await Vault.open(repo, PASSPHRASE, kdf_params=CHEAP)


async def snapshot(db: Database) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every stored column of both vault tables, to prove that nothing changed."""
    async with db.session() as session:
        meta = (await session.execute(select(*VaultMetaRow.__table__.columns))).all()
        rows = await session.execute(
            select(*VaultSecretRow.__table__.columns).order_by(VaultSecretRow.name)
        )
        return [tuple(row) for row in meta], [tuple(row) for row in rows.all()]


async def stored_secret(db: Database, name: str) -> VaultSecretRow:
    async with db.session() as session:
        row = await session.get(VaultSecretRow, name)
        assert row is not None
        return row


async def test_set_get_list_delete_round_trip(vault: Vault) -> None:
    await vault.set("openai", "sk-one")
    await vault.set("Anthropic.key-2", "ключ ✓")
    assert await vault.get("openai") == "sk-one"
    assert await vault.get("Anthropic.key-2") == "ключ ✓"
    assert await vault.list() == ["Anthropic.key-2", "openai"]
    await vault.set("openai", "sk-two")
    assert await vault.get("openai") == "sk-two"
    await vault.delete("openai")
    assert await vault.list() == ["Anthropic.key-2"]
    with pytest.raises(SecretNotFound, match="openai"):
        await vault.get("openai")
    with pytest.raises(SecretNotFound):
        await vault.delete("openai")


async def test_vault_is_a_secret_store_and_hides_its_keys(vault: Vault) -> None:
    store: SecretStore = vault
    await vault.set("token", CLEAR)
    assert await store.get("token") == CLEAR
    assert repr(vault) == "Vault(key_version=1)"


async def test_clear_value_never_reaches_the_database(
    vault: Vault, migrated_db: Database, db_url: str
) -> None:
    await vault.set("provider-key", CLEAR)
    await vault.rotate()
    if migrated_db.is_sqlite:
        await migrated_db.close()  # checkpoints the WAL into the main file
        path = sqlite_path(db_url)
        files = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]
        raw = b"".join(p.read_bytes() for p in files)
        assert b"provider-key" in raw  # the names are stored in clear: we did read the data
    else:
        meta, rows = await snapshot(migrated_db)
        raw = repr((meta, rows)).encode() + b"".join(
            bytes(v) for row in meta + rows for v in row if isinstance(v, bytes | memoryview)
        )
        assert len(rows) == 1
    assert CLEAR.encode() not in raw
    assert CLEAR.encode().hex().encode() not in raw


async def test_wrong_passphrase_is_refused_and_changes_nothing(
    vault: Vault, repo: VaultRepository, migrated_db: Database
) -> None:
    await vault.set("a", CLEAR)
    before = await snapshot(migrated_db)
    with pytest.raises(VaultKeyMismatch, match="vault key does not match") as caught:
        await Vault.open(repo, "not the passphrase", kdf_params=CHEAP)
    assert "not the passphrase" not in str(caught.value)
    assert await snapshot(migrated_db) == before


async def test_ciphertext_moved_to_another_name_does_not_decrypt(
    vault: Vault, migrated_db: Database
) -> None:
    await vault.set("alpha", "value-of-alpha")
    await vault.set("beta", "value-of-beta")
    alpha = await stored_secret(migrated_db, "alpha")
    beta = await stored_secret(migrated_db, "beta")
    async with migrated_db.transaction() as session:
        for target, source in ((alpha, beta), (beta, alpha)):
            await session.execute(
                update(VaultSecretRow)
                .where(VaultSecretRow.name == target.name)
                .values(nonce=source.nonce, ciphertext=source.ciphertext)
            )
    for name in ("alpha", "beta"):
        with pytest.raises(VaultError, match="cannot be decrypted") as caught:
            await vault.get(name)
        assert type(caught.value) is VaultError
        assert "value-of" not in str(caught.value)


async def test_altered_ciphertext_does_not_decrypt(vault: Vault, migrated_db: Database) -> None:
    await vault.set("alpha", CLEAR)
    row = await stored_secret(migrated_db, "alpha")
    flipped = bytes([row.ciphertext[0] ^ 1]) + bytes(row.ciphertext[1:])
    async with migrated_db.transaction() as session:
        await session.execute(
            update(VaultSecretRow).where(VaultSecretRow.name == "alpha").values(ciphertext=flipped)
        )
    with pytest.raises(VaultError, match="cannot be decrypted"):
        await vault.get("alpha")


async def test_rotate_reencrypts_every_entry_under_a_new_key(
    vault: Vault, repo: VaultRepository, migrated_db: Database
) -> None:
    values = {"one": "first value", "two": "second value", "three": CLEAR}
    for name, value in values.items():
        await vault.set(name, value)
    (old_meta,), old_rows = await snapshot(migrated_db)
    assert await vault.rotate() == 3
    (new_meta,), new_rows = await snapshot(migrated_db)
    columns = [c.name for c in VaultSecretRow.__table__.columns]
    for old, new in zip(old_rows, new_rows, strict=True):
        old_row, new_row = (
            dict(zip(columns, old, strict=True)),
            dict(zip(columns, new, strict=True)),
        )
        assert old_row["name"] == new_row["name"]
        assert new_row["nonce"] != old_row["nonce"]
        assert new_row["ciphertext"] != old_row["ciphertext"]
        assert (old_row["key_version"], new_row["key_version"]) == (1, 2)
    meta = await repo.get_meta()
    assert meta is not None and meta.key_version == 2 and meta.rotated_at is not None
    assert old_meta != new_meta
    for name, value in values.items():
        assert await vault.get(name) == value
    reopened = await Vault.open(repo, PASSPHRASE, kdf_params=CHEAP)
    for name, value in values.items():
        assert await reopened.get(name) == value


async def test_rotate_of_an_empty_vault(vault: Vault) -> None:
    assert await vault.rotate() == 0
    await vault.set("after", "x")
    assert await vault.get("after") == "x"


async def test_rotate_to_a_new_passphrase(vault: Vault, repo: VaultRepository) -> None:
    await vault.set("a", CLEAR)
    old_meta = await repo.get_meta()
    assert await vault.rotate(new_passphrase="a brand new passphrase") == 1
    new_meta = await repo.get_meta()
    assert old_meta is not None and new_meta is not None
    assert new_meta.salt != old_meta.salt
    assert await vault.get("a") == CLEAR
    with pytest.raises(VaultKeyMismatch):
        await Vault.open(repo, PASSPHRASE, kdf_params=CHEAP)
    reopened = await Vault.open(repo, "a brand new passphrase", kdf_params=CHEAP)
    assert await reopened.get("a") == CLEAR


@contextmanager
def crash_on_secret_write(db: Database, *, after: int) -> Iterator[list[str]]:
    """Fail the rotation's transaction once ``after`` entries have been written in it."""
    seen: list[str] = []

    def before_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO VAULT_SECRETS"):
            seen.append(statement)
            if len(seen) > after:
                raise RuntimeError("simulated crash in the middle of rotate")

    event.listen(db.engine.sync_engine, "before_cursor_execute", before_execute)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", before_execute)


@pytest.mark.slow
async def test_crash_during_rotate_leaves_the_old_state_readable(
    vault: Vault, repo: VaultRepository, migrated_db: Database
) -> None:
    values = {f"key{i}": f"value number {i}" for i in range(4)}
    for name, value in values.items():
        await vault.set(name, value)
    before = await snapshot(migrated_db)
    with crash_on_secret_write(migrated_db, after=2) as written:
        with pytest.raises(RuntimeError, match="simulated crash"):
            await vault.rotate(new_passphrase="never committed")
    assert len(written) == 3  # the meta row, then two entries, were rewritten before it
    assert await snapshot(migrated_db) == before
    for name, value in values.items():
        assert await vault.get(name) == value
    reopened = await Vault.open(repo, PASSPHRASE, kdf_params=CHEAP)
    for name, value in values.items():
        assert await reopened.get(name) == value
    with pytest.raises(VaultKeyMismatch):
        await Vault.open(repo, "never committed", kdf_params=CHEAP)
    assert await vault.rotate() == 4  # and a later rotation goes through


class RacingRepository(VaultRepository):
    """Holds every opener after its first read until all have read: a forced race."""

    def __init__(self, db: Database, barrier: asyncio.Barrier) -> None:
        super().__init__(db)
        self._barrier = barrier
        self.first_read: list[VaultMetaRecord | None] = []

    async def get_meta(self) -> VaultMetaRecord | None:
        meta = await super().get_meta()
        if not self.first_read:
            self.first_read.append(meta)
            await self._barrier.wait()
        return meta


@pytest.fixture
async def second_db(db_url: str, migrated_db: Database) -> AsyncIterator[Database]:
    """Another handle on the same database, standing in for another process."""
    db = Database.open(db_url)
    try:
        yield db
    finally:
        await db.close()


async def meta_rows(db: Database) -> int:
    async with db.session() as session:
        return int((await session.scalar(select(func.count()).select_from(VaultMetaRow))) or 0)


@pytest.mark.slow
async def test_concurrent_first_opens_agree_on_one_vault(
    migrated_db: Database, second_db: Database
) -> None:
    barrier = asyncio.Barrier(2)
    repos = RacingRepository(migrated_db, barrier), RacingRepository(second_db, barrier)
    first, second = await asyncio.gather(
        *(Vault.open(repo, PASSPHRASE, kdf_params=CHEAP) for repo in repos)
    )
    assert [repo.first_read for repo in repos] == [[None], [None]]  # both found it empty
    assert await meta_rows(migrated_db) == 1
    await first.set("from-first", "1")
    await second.set("from-second", "2")
    assert await second.get("from-first") == "1"
    assert await first.get("from-second") == "2"


@pytest.mark.slow
async def test_rotation_by_another_process_is_picked_up(vault: Vault, second_db: Database) -> None:
    await vault.set("a", "before")
    other = await Vault.open(VaultRepository(second_db), PASSPHRASE, kdf_params=CHEAP)
    assert await other.rotate() == 1
    assert await vault.get("a") == "before"  # reads the new data key with the same KEK
    await vault.set("b", "written after the rotation")
    assert await other.get("b") == "written after the rotation"
    await other.rotate(new_passphrase="changed elsewhere")
    with pytest.raises(VaultKeyMismatch, match="new passphrase"):
        await vault.get("a")


async def test_stale_view_of_the_entries_aborts_replace_all(
    vault: Vault, repo: VaultRepository, migrated_db: Database
) -> None:
    await vault.set("a", "1")
    meta = await repo.get_meta()
    assert meta is not None
    before = await snapshot(migrated_db)
    with pytest.raises(VaultChanged):
        await repo.replace_all(meta, [], expected_key_version=1, expected_nonces={})
    with pytest.raises(VaultChanged):
        await repo.replace_all(meta, [], expected_key_version=7, expected_nonces={})
    assert await snapshot(migrated_db) == before


@pytest.mark.parametrize(
    "name",
    [
        "",
        "-leading-dash",
        ".hidden",
        "_x",
        "has space",
        "a/b",
        "tab\there",
        "trailing\n",
        "ünïcode",
        "a" * 129,
    ],
)
async def test_invalid_names_are_refused(vault: Vault, name: str) -> None:
    for attempt in (vault.set(name, "v"), vault.get(name), vault.delete(name)):
        with pytest.raises(VaultError, match="invalid vault entry name") as caught:
            await attempt
        assert not isinstance(caught.value, SecretNotFound)
    assert await vault.list() == []


async def test_longest_and_punctuated_names_are_accepted(vault: Vault) -> None:
    for name in ("a" * 128, "A.b-c_9", "0"):
        await vault.set(name, name)
        assert await vault.get(name) == name


@pytest.mark.parametrize("passphrase", ["", "   "])
async def test_empty_passphrase_is_refused_before_anything_is_written(
    repo: VaultRepository, passphrase: str
) -> None:
    with pytest.raises(VaultError, match="vault key is empty"):
        await Vault.open(repo, passphrase, kdf_params=CHEAP)
    assert await repo.get_meta() is None


async def test_default_kdf_is_scrypt_n_2_15(repo: VaultRepository) -> None:
    assert ScryptParams() == ScryptParams(n=2**15, r=8, p=1)
    vault = await Vault.open(repo, PASSPHRASE)
    meta = await repo.get_meta()
    assert meta is not None
    assert (meta.kdf, meta.scrypt_n, meta.scrypt_r, meta.scrypt_p) == ("scrypt", 2**15, 8, 1)
    assert len(meta.salt) == 16
    await vault.set("a", "b")
    assert await vault.get("a") == "b"


@pytest.mark.parametrize("params", [{"n": 1000}, {"n": 2**23}, {"r": 0}, {"p": 17}])
def test_unsafe_scrypt_params_are_refused(params: dict[str, int]) -> None:
    with pytest.raises(VaultError, match="scrypt"):
        ScryptParams(**params)
