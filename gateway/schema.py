"""Schema migrations for the gateway: upgrade to the newest revision, or check we are at it.

The Alembic configuration is built in code from the installed ``migrations`` package, so
``switchboard migrate`` needs no ``alembic.ini``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import Connection

import migrations
from core.errors import SchemaOutOfDate, StorageError
from core.storage import Database

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent


def alembic_config(url: str) -> Config:
    """An Alembic configuration for ``url`` with the installed revision scripts."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Options go through ConfigParser interpolation: a percent-encoded password would
    # otherwise be read as a %(name)s reference.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest revision this version of Switchboard ships."""
    heads = ScriptDirectory.from_config(alembic_config("")).get_heads()
    if len(heads) != 1:
        raise StorageError(f"the migrations have {len(heads)} heads, expected one: {heads}")
    return heads[0]


async def upgrade_to_head(url: str) -> tuple[str | None, str]:
    """Apply every missing revision; returns the revision (before, after). Idempotent.

    The upgrade runs in one transaction that holds the migration lock, so two processes
    migrating at once apply each revision once. Alembic is synchronous and loads the
    scripts from disk, so it runs in a worker thread with its own event loop: the
    caller's loop keeps serving.
    """
    return await asyncio.to_thread(_upgrade_in_thread, url)


async def check_schema(db: Database) -> None:
    """Raise ``SchemaOutOfDate`` unless the database is at the head revision."""
    expected = await asyncio.to_thread(head_revision)
    current = await db.current_revision()
    if current != expected:
        raise SchemaOutOfDate(current=current, expected=expected)


def _upgrade_in_thread(url: str) -> tuple[str | None, str]:
    return asyncio.run(_upgrade(url))


async def _upgrade(url: str) -> tuple[str | None, str]:
    # A concurrent migration holds the file's write lock for as long as it runs: wait for
    # it (a minute) rather than failing after the usual five seconds.
    db = Database.open(url, pool_size=1, busy_timeout_ms=60_000)
    try:
        async with db.exclusive_transaction(lock_key=migrations.MIGRATION_LOCK_KEY) as conn:
            return await conn.run_sync(_upgrade_on, url=url, location=db.location)
    finally:
        await db.close()


def _upgrade_on(conn: Connection, *, url: str, location: str) -> tuple[str | None, str]:
    before = MigrationContext.configure(conn).get_current_revision()
    config = alembic_config(url)
    config.attributes["connection"] = conn
    try:
        command.upgrade(config, "head")
    except CommandError as exc:
        # Typically a schema newer than this version knows (a downgrade of Switchboard).
        raise StorageError(f"cannot migrate the database ({location}): {exc}") from exc
    after = MigrationContext.configure(conn).get_current_revision()
    if after is None:
        raise StorageError(f"migrating the database ({location}) left no revision behind")
    return before, after
