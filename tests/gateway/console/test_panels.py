"""The audit panel's chain check: fresh when the chain grows, a tampered record within 10 s."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.security.audit import AuditLog
from core.storage import Database
from core.storage.audit_repo import AuditRepository
from gateway.console.panels import AuditCheck
from gateway.schema import upgrade_to_head
from tests.core.security.test_audit import execute


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    await upgrade_to_head(url)
    database = Database.open(url)
    try:
        yield database
    finally:
        await database.close()


async def test_the_verdict_follows_the_chain(db: Database) -> None:
    now = [datetime(2026, 11, 24, 12, 0, tzinfo=UTC)]
    check = AuditCheck(max_age_s=10, clock=lambda: now[0])
    log = AuditLog(AuditRepository(db))
    for i in range(3):
        await log.append("test.event", actor="tester", data={"i": i})
    first = await check.check(log)
    assert first.verdict.ok and first.verdict.count == 3

    await log.append("test.event", actor="tester", data={"i": 3})
    grown = await check.check(log)
    assert grown.verdict.count == 4  # a new record: checked again at once

    await execute(db, "UPDATE audit_log SET data = :d WHERE seq = 2", d='{"i":20}')
    now[0] += timedelta(seconds=5)
    assert (await check.check(log)).verdict.ok  # same head, 5 s old: the cached verdict
    now[0] += timedelta(seconds=5)
    broken = await check.check(log)
    assert not broken.verdict.ok and broken.verdict.first_bad_seq == 2
    assert broken.checked_at == now[0]
