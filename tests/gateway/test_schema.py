"""Schema migrations: upgrade to head, idempotence, the check at startup, models == scripts."""

from __future__ import annotations

import asyncio

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from core.errors import SchemaOutOfDate
from core.storage import Base, Database
from gateway.schema import alembic_config, check_schema, head_revision, upgrade_to_head


def test_revisions_form_one_linear_chain_ending_at_head() -> None:
    from alembic.script import ScriptDirectory

    from gateway.schema import alembic_config

    script = ScriptDirectory.from_config(alembic_config("sqlite+aiosqlite:///unused.db"))
    assert script.get_heads() == [head_revision()]
    chain = list(script.walk_revisions())
    assert chain[-1].down_revision is None
    assert [r.revision for r in chain][-1] == "0001_vault"
    for newer, older in zip(chain, chain[1:], strict=False):
        assert newer.down_revision == older.revision


async def test_upgrade_to_head_is_idempotent(db_url: str) -> None:
    head = head_revision()
    assert await upgrade_to_head(db_url) == (None, head)
    assert await upgrade_to_head(db_url) == (head, head)


async def test_check_schema_refuses_an_empty_database_then_passes(db_url: str) -> None:
    db = Database.open(db_url)
    try:
        with pytest.raises(SchemaOutOfDate) as caught:
            await check_schema(db)
        assert caught.value.current is None
        assert caught.value.expected == head_revision()
        assert "switchboard migrate" in str(caught.value)
        await upgrade_to_head(db_url)
        await check_schema(db)
        assert await db.current_revision() == head_revision()
    finally:
        await db.close()


def _differences(conn: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))


async def test_migrated_schema_matches_the_models(migrated_db: Database) -> None:
    # The revisions are written by hand: this is what keeps them equal to the models.
    async with migrated_db.engine.connect() as conn:
        assert await conn.run_sync(_differences) == []


def _table_names(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


async def test_downgrade_to_base_then_upgrade_again(db_url: str) -> None:
    # Also drives migrations/env.py the way the `alembic` command line does: URL only.
    await upgrade_to_head(db_url)
    await asyncio.to_thread(command.downgrade, alembic_config(db_url), "base")
    db = Database.open(db_url)
    try:
        assert await db.current_revision() is None
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_table_names) == {"alembic_version"}
        assert await upgrade_to_head(db_url) == (None, head_revision())
        async with db.engine.connect() as conn:
            assert {"vault_meta", "vault_secrets"} <= await conn.run_sync(_table_names)
    finally:
        await db.close()


@pytest.mark.slow
async def test_concurrent_upgrades_apply_the_schema_once(db_url: str) -> None:
    head = head_revision()
    results = await asyncio.gather(*(upgrade_to_head(db_url) for _ in range(3)))
    assert sorted(results, key=str) == sorted([(None, head), (head, head), (head, head)], key=str)


def test_alembic_config_keeps_percent_encoded_passwords() -> None:
    url = "postgresql+asyncpg://sb:p%40ss%25word@db.internal:5432/switchboard"
    assert alembic_config(url).get_main_option("sqlalchemy.url") == url
