"""The vault repository on its own: records in and out, conflicts, timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from core.storage import (
    Database,
    SecretRecord,
    VaultChanged,
    VaultMetaRecord,
    VaultRepository,
)

T0 = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)


def meta(*, salt: bytes = b"s" * 16, key_version: int = 1) -> VaultMetaRecord:
    return VaultMetaRecord(
        kdf="scrypt",
        scrypt_n=2**10,
        scrypt_r=8,
        scrypt_p=1,
        salt=salt,
        wrapped_key=b"w" * 48,
        wrap_nonce=b"n" * 12,
        key_version=key_version,
        created_at=T0,
    )


def secret(name: str, *, key_version: int = 1, at: datetime = T0) -> SecretRecord:
    return SecretRecord(
        name=name,
        nonce=b"\x00" * 12,
        ciphertext=b"\xff" * 20,
        key_version=key_version,
        created_at=at,
        updated_at=at,
    )


@pytest.fixture
def repo(migrated_db: Database) -> VaultRepository:
    return VaultRepository(migrated_db)


async def test_first_meta_wins_and_is_returned_to_the_second(repo: VaultRepository) -> None:
    assert await repo.get_meta() is None
    assert (await repo.insert_meta_if_absent(meta(salt=b"1" * 16))).salt == b"1" * 16
    assert (await repo.insert_meta_if_absent(meta(salt=b"2" * 16))).salt == b"1" * 16


async def test_timestamps_come_back_as_aware_utc(repo: VaultRepository) -> None:
    plus_two = timezone(timedelta(hours=2))
    await repo.insert_meta_if_absent(meta())
    await repo.upsert_secret(secret("a", at=T0.astimezone(plus_two)))
    stored = await repo.get_secret("a")
    assert stored is not None
    assert stored.created_at == T0
    assert stored.created_at.utcoffset() == timedelta(0)


async def test_upsert_keeps_created_at_and_refuses_a_stale_key_version(
    repo: VaultRepository,
) -> None:
    await repo.insert_meta_if_absent(meta())
    await repo.upsert_secret(secret("a"))
    later = T0 + timedelta(days=1)
    await repo.upsert_secret(secret("a", at=later))
    stored = await repo.get_secret("a")
    assert stored is not None
    assert (stored.created_at, stored.updated_at) == (T0, later)
    with pytest.raises(VaultChanged):
        await repo.upsert_secret(secret("b", key_version=2))
    assert await repo.list_names() == ["a"]


async def test_names_sort_by_code_point_and_delete_says_whether_it_found_one(
    repo: VaultRepository,
) -> None:
    await repo.insert_meta_if_absent(meta())
    for name in ("b", "B", "a-1", "a.1", "A"):
        await repo.upsert_secret(secret(name))
    assert await repo.list_names() == ["A", "B", "a-1", "a.1", "b"]
    assert await repo.delete_secret("B") is True
    assert await repo.delete_secret("B") is False
    assert [record.name for record in await repo.list_secrets()] == ["A", "a-1", "a.1", "b"]


async def test_replace_all_rewrites_meta_and_the_whole_set(repo: VaultRepository) -> None:
    await repo.insert_meta_if_absent(meta())
    for name in ("keep", "drop"):
        await repo.upsert_secret(secret(name))
    nonces = {record.name: record.nonce for record in await repo.list_secrets()}
    await repo.replace_all(
        meta(key_version=2),
        [secret("keep", key_version=2), secret("new", key_version=2)],
        expected_key_version=1,
        expected_nonces=nonces,
    )
    stored = await repo.get_meta()
    assert stored is not None and stored.key_version == 2
    assert await repo.list_names() == ["keep", "new"]
    assert {record.key_version for record in await repo.list_secrets()} == {2}
