"""The audit chain on both backends: appends, every kind of tampering, concurrency, secrets."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from itertools import count

import pytest
from sqlalchemy import text

from core.errors import StorageError
from core.security.audit import GENESIS_HASH, AuditLog, record_hash
from core.storage import Database
from core.storage.audit_repo import AuditRepository

SECRET = "sk-live-0123456789abcdef"


def ticking_clock(start: datetime | None = None) -> Callable[[], datetime]:
    """A clock that advances one second and 1 µs per call (odd microseconds on purpose)."""
    start = start or datetime(2026, 12, 3, 10, 20, 30, 123457, tzinfo=UTC)
    ticks = count()
    return lambda: start + timedelta(seconds=next(ticks), microseconds=next(ticks))


def audit_log(db: Database, *, redact: Callable[[str], str] = lambda s: s) -> AuditLog:
    return AuditLog(AuditRepository(db), clock=ticking_clock(), redact=redact)


async def fill(log: AuditLog, n: int) -> None:
    for i in range(1, n + 1):
        await log.append("test.step", actor="tester", conversation="console:1", data={"i": i})


async def execute(db: Database, sql: str, **params: object) -> None:
    async with db.transaction() as session:
        await session.execute(text(sql), params)


async def test_appended_records_chain_and_verify(migrated_db: Database) -> None:
    log = audit_log(migrated_db)
    assert (await log.verify()).ok and (await log.verify()).count == 0
    assert await log.head() is None
    first = await log.append("config.applied", actor="gateway", data={"generation": 2})
    second = await log.append("vault.get", actor="operator:cli", action_id="a1", data={})
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS_HASH and second.prev_hash == first.hash
    body = {
        "seq": 1,
        "at": first.at.isoformat(timespec="microseconds"),
        "kind": "config.applied",
        "actor": "gateway",
        "conversation": None,
        "action_id": None,
        "data": {"generation": 2},
        "prev_hash": GENESIS_HASH,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert first.hash == hashlib.sha256(canonical.encode()).hexdigest()
    verdict = await log.verify()
    assert (verdict.ok, verdict.count, verdict.first_bad_seq, verdict.problem) == (
        True,
        2,
        None,
        None,
    )
    assert await log.head() == second
    assert [r.seq for r in await log.tail(5)] == [1, 2]
    assert await log.tail(1) == [second]


async def test_page_filters_by_kind_and_seq(migrated_db: Database) -> None:
    log = audit_log(migrated_db)
    for kind in ("a", "b", "a", "b", "a"):
        await log.append(kind)
    assert [r.seq for r in await log.page(after_seq=1, limit=2)] == [2, 3]
    assert [r.seq for r in await log.page(kind="a")] == [1, 3, 5]
    assert [r.seq for r in await log.page(after_seq=3, kind="a")] == [5]


async def test_verify_streams_in_batches(migrated_db: Database) -> None:
    log = audit_log(migrated_db)
    await fill(log, 7)
    repo = AuditRepository(migrated_db)
    assert [r.seq async for r in repo.iterate(batch=3)] == list(range(1, 8))
    assert await repo.count() == 7


async def test_a_changed_field_names_that_record(migrated_db: Database) -> None:
    log = audit_log(migrated_db)
    await fill(log, 5)
    await execute(migrated_db, "UPDATE audit_log SET data = :d WHERE seq = 3", d='{"i":30}')
    verdict = await log.verify()
    assert not verdict.ok
    assert verdict.first_bad_seq == 3
    assert verdict.problem == "hash does not match its contents"
    assert verdict.count == 5


async def test_data_that_is_not_json_names_that_record(migrated_db: Database) -> None:
    log = audit_log(migrated_db)
    await fill(log, 3)
    await execute(migrated_db, "UPDATE audit_log SET data = 'oops' WHERE seq = 2")
    verdict = await log.verify()
    assert (verdict.ok, verdict.first_bad_seq) == (False, 2)
    assert verdict.problem is not None and "not valid JSON" in verdict.problem


async def test_a_deleted_record_names_the_next_one(migrated_db: Database) -> None:
    log = audit_log(migrated_db)
    await fill(log, 5)
    await execute(migrated_db, "DELETE FROM audit_log WHERE seq = 3")
    verdict = await log.verify()
    assert (verdict.ok, verdict.first_bad_seq, verdict.problem) == (
        False,
        4,
        "record 3 is missing",
    )


async def test_a_deleted_first_record_is_found(migrated_db: Database) -> None:
    log = audit_log(migrated_db)
    await fill(log, 3)
    await execute(migrated_db, "DELETE FROM audit_log WHERE seq = 1")
    verdict = await log.verify()
    assert (verdict.first_bad_seq, verdict.problem) == (2, "record 1 is missing")


async def test_swapped_records_name_the_first_out_of_place(migrated_db: Database) -> None:
    log = audit_log(migrated_db)
    await fill(log, 6)
    # Swap seq 2 and 5 through a free value (seq is the primary key).
    await execute(migrated_db, "UPDATE audit_log SET seq = -5 WHERE seq = 5")
    await execute(migrated_db, "UPDATE audit_log SET seq = 5 WHERE seq = 2")
    await execute(migrated_db, "UPDATE audit_log SET seq = 2 WHERE seq = -5")
    verdict = await log.verify()
    assert (verdict.ok, verdict.first_bad_seq) == (False, 2)
    assert verdict.problem is not None and "prev_hash does not link to record 1" in verdict.problem


async def test_a_changed_last_hash_is_found(migrated_db: Database) -> None:
    log = audit_log(migrated_db)
    await fill(log, 4)
    await execute(migrated_db, "UPDATE audit_log SET hash = :h WHERE seq = 4", h="f" * 64)
    verdict = await log.verify()
    assert (verdict.first_bad_seq, verdict.problem) == (4, "hash does not match its contents")


async def test_a_consistently_rewritten_record_breaks_the_next_link(
    migrated_db: Database,
) -> None:
    log = audit_log(migrated_db)
    await fill(log, 3)
    (old,) = await log.page(after_seq=1, limit=1)
    forged = record_hash(
        seq=2,
        at=old.at,
        kind=old.kind,
        actor="someone else",
        conversation=old.conversation,
        action_id=old.action_id,
        data=old.data,
        prev_hash=old.prev_hash,
    )
    await execute(
        migrated_db,
        "UPDATE audit_log SET actor = 'someone else', hash = :h WHERE seq = 2",
        h=forged,
    )
    verdict = await log.verify()
    assert verdict.first_bad_seq == 3
    assert verdict.problem is not None and "record 2" in verdict.problem


@pytest.mark.parametrize(
    "at",
    [
        datetime(2026, 12, 3, 10, 20, 30, 123456, tzinfo=UTC),
        datetime(2026, 12, 3, 10, 20, 30, 0, tzinfo=UTC),
        datetime(2026, 12, 3, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-7))),
    ],
)
async def test_timestamps_round_trip_exactly(migrated_db: Database, at: datetime) -> None:
    log = AuditLog(AuditRepository(migrated_db), clock=lambda: at)
    appended = await log.append("clock.test")
    (stored,) = await log.tail(1)
    assert stored.at == at
    assert stored.at.utcoffset() == timedelta(0)
    assert stored == appended
    assert (await log.verify()).ok


async def test_secrets_never_reach_the_stored_row(migrated_db: Database) -> None:
    log = audit_log(migrated_db, redact=lambda s: s.replace(SECRET, "[redacted]"))
    record = await log.append(
        "provider.registered",
        actor=f"user-with-{SECRET}",
        data={
            "api_key": "plain-key-not-known-to-the-redactor",
            "headers": {"Authorization": "Bearer abcdef", "X-Ok": "fine"},
            "note": f"the key is {SECRET}",
            "values": [SECRET, 1, None],
            "GitHub-Token": {"nested": "also hidden"},
            "access_tokens": ["hidden-too"],
            "usage": {"input_tokens": 12, "output_tokens": 3},
        },
    )
    assert record.data == {
        "api_key": "[redacted]",
        "headers": {"Authorization": "[redacted]", "X-Ok": "fine"},
        "note": "the key is [redacted]",
        "values": ["[redacted]", 1, None],
        "GitHub-Token": "[redacted]",
        "access_tokens": "[redacted]",
        "usage": {"input_tokens": 12, "output_tokens": 3},
    }
    async with migrated_db.session() as session:
        rows = (await session.execute(text("SELECT * FROM audit_log"))).all()
    stored = " ".join(str(value) for row in rows for value in row)
    for leaked in (SECRET, "plain-key-not-known", "Bearer abcdef", "also hidden", "hidden-too"):
        assert leaked not in stored
    assert (await log.verify()).ok


async def test_odd_values_are_stored_and_still_verify(migrated_db: Database) -> None:
    log = audit_log(migrated_db)
    record = await log.append(
        "odd", data={"nul": "a\x00b", "nan": float("nan"), "when": datetime(2026, 1, 1), 3: "x"}
    )
    assert record.data["nul"] == "a\ufffdb" and record.data["nan"] == "nan"
    assert record.data["3"] == "x"
    assert (await log.verify()).ok
    with pytest.raises(ValueError, match="kind"):
        await log.append("k" * 65)


async def _contiguous_and_valid(log: AuditLog, n: int) -> None:
    records = await log.page(limit=n + 1)
    assert [r.seq for r in records] == list(range(1, n + 1))
    verdict = await log.verify()
    assert (verdict.ok, verdict.count) == (True, n)


@pytest.mark.slow
async def test_concurrent_appends_on_one_log_stay_one_chain(migrated_db: Database) -> None:
    log = AuditLog(AuditRepository(migrated_db))
    await asyncio.gather(*(log.append("burst", data={"i": i}) for i in range(300)))
    await _contiguous_and_valid(log, 300)


@pytest.mark.slow
async def test_concurrent_appends_from_two_processes_stay_one_chain(
    migrated_db: Database, db_url: str
) -> None:
    # A second engine on the same database stands in for a second gateway process: it
    # shares neither the pool nor the in-process lock, only the database lock.
    other_db = Database.open(db_url)
    try:
        first = AuditLog(AuditRepository(migrated_db))
        second = AuditLog(AuditRepository(other_db))
        await asyncio.gather(
            *((first if i % 2 else second).append("burst", data={"i": i}) for i in range(300))
        )
        await _contiguous_and_valid(first, 300)
        assert (await second.verify()).ok
    finally:
        await other_db.close()


async def test_concurrent_appends_are_committed_together_each_caller_gets_its_own(
    migrated_db: Database,
) -> None:
    log = audit_log(migrated_db)
    transactions = 0
    real = migrated_db.exclusive_transaction

    def counting(**kwargs: int) -> object:
        nonlocal transactions
        transactions += 1
        return real(**kwargs)

    migrated_db.exclusive_transaction = counting  # type: ignore[method-assign]
    records = await asyncio.gather(*(log.append("burst", data={"i": i}) for i in range(50)))
    assert [r.data["i"] for r in records] == list(range(50))  # each caller's own record
    assert sorted(r.seq for r in records) == list(range(1, 51))
    assert transactions < 10  # group commit: not one transaction (and fsync) per record
    await _contiguous_and_valid(log, 50)


async def test_a_failed_group_commit_fails_every_caller_in_it() -> None:
    unreachable = Database.open("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    log = AuditLog(AuditRepository(unreachable))
    try:
        results = await asyncio.gather(
            *(log.append("burst", data={"i": i}) for i in range(5)), return_exceptions=True
        )
    finally:
        await unreachable.close()
    assert [type(r) for r in results] == [StorageError] * 5, results
