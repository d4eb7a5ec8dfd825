"""Alembic environment: runs the revisions against SQLite or PostgreSQL, asynchronously.

Two ways in:

* ``gateway.schema.upgrade_to_head`` passes an open connection, already inside a
  locked transaction, as ``config.attributes["connection"]``;
* the ``alembic`` command line (``alembic.ini`` at the repository root) passes a URL,
  and this module opens the database itself through ``core.storage.Database``, so the
  same SQLite settings and migration lock apply.
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from core.storage import Base, Database
from migrations import MIGRATION_LOCK_KEY

config = context.config
target_metadata = Base.metadata

# Only the command line has an ini file with logging sections; the gateway logs its own way.
if config.config_file_name is not None and config.attributes.get("connection") is None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    # Command line only: alembic.ini leaves sqlalchemy.url empty and names a variable.
    variable = config.get_main_option("switchboard.url_env", "SWITCHBOARD_DATABASE_URL")
    default = config.get_main_option("switchboard.default_url")
    found = os.environ.get(variable or "") or default
    if not found:
        raise RuntimeError(f"no database URL: set {variable} or sqlalchemy.url in alembic.ini")
    return found


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode recreates the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def _run(connection: Connection) -> None:
    _configure(connection)
    # Inside an outer transaction (always, here) Alembic opens none of its own, so the
    # whole upgrade commits or rolls back as one.
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Print the SQL (``alembic upgrade --sql``) instead of running it."""
    url = _url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    db = Database.open(_url(), pool_size=1)
    try:
        async with db.exclusive_transaction(lock_key=MIGRATION_LOCK_KEY) as conn:
            await conn.run_sync(_run)
    finally:
        await db.close()


def run_migrations_online() -> None:
    """Run the revisions on the given connection, or on a database opened from the URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        asyncio.run(_run_async())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
