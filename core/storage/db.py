"""The database handle: one async engine, its sessions, and the SQLite settings we rely on."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, event, inspect, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from core.errors import StorageError
from core.storage.sqlite_inline import WriteGate, inline_connector

# Seconds a PostgreSQL connect may take before ping() reports the database unreachable.
_PG_CONNECT_TIMEOUT_S = 10.0
# Execution option read by the SQLite "begin" hook (see _sqlite_begin).
_BEGIN_IMMEDIATE = "switchboard_begin_immediate"

_DRIVER_ERRORS = (DBAPIError, OSError)


class Database:
    """An open database: SQLite through aiosqlite, or PostgreSQL through asyncpg.

    SQLite connections run with ``journal_mode=WAL`` (readers never block the writer),
    ``synchronous=FULL`` (a committed transaction survives power loss),
    ``foreign_keys=ON`` and ``busy_timeout=5000``; SQLAlchemy, not the ``sqlite3``
    module, emits ``BEGIN``, so every transaction, DDL included, is a real one.

    SQLite statements run on the event loop's thread (``sqlite_inline``: no worker-thread
    hop per call). So writes go through ``transaction()`` or ``exclusive_transaction()``
    only: on SQLite they take turns on an in-process write gate and start with ``BEGIN
    IMMEDIATE``; nesting them in one task raises ``RuntimeError``. ``session()`` is for
    reads, which stay concurrent (WAL). Another process writing the same file (the CLI)
    still makes our writes wait in SQLite's busy handler, and that wait now blocks the
    loop, up to ``busy_timeout``; CLI transactions are short (milliseconds).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._write_gate: WriteGate | None = None
        writer_engine = engine
        if engine.dialect.name == "sqlite":
            self._write_gate = WriteGate()
            writer_engine = engine.execution_options(**{_BEGIN_IMMEDIATE: True})
        self._writer_engine = writer_engine
        self._write_sessions = async_sessionmaker(writer_engine, expire_on_commit=False)

    @classmethod
    def open(
        cls, url: str, *, pool_size: int = 5, echo: bool = False, busy_timeout_ms: int = 5000
    ) -> Database:
        """Build the engine for ``url`` (no connection is made until first use)."""
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise StorageError(f"invalid database URL: {exc}") from None
        backend = parsed.get_backend_name()
        options: dict[str, Any] = {"echo": echo}
        if backend == "sqlite":
            if sqlite_file(parsed) is not None:
                _ensure_parent_dir(parsed)
                options["pool_size"] = pool_size
            options["async_creator"] = inline_connector(parsed)
        elif backend == "postgresql":
            options.update(
                pool_size=pool_size,
                pool_pre_ping=True,
                connect_args={"timeout": _PG_CONNECT_TIMEOUT_S},
            )
        else:
            raise StorageError(
                f"unsupported database backend {backend!r}: use sqlite+aiosqlite or "
                "postgresql+asyncpg"
            )
        engine = create_async_engine(parsed, **options)
        if backend == "sqlite":
            event.listen(
                engine.sync_engine,
                "connect",
                functools.partial(_sqlite_connect, busy_timeout_ms=busy_timeout_ms),
            )
            event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return cls(engine)

    @property
    def engine(self) -> AsyncEngine:
        """The SQLAlchemy async engine."""
        return self._engine

    @property
    def is_sqlite(self) -> bool:
        """True for the embedded SQLite backend."""
        return self._engine.dialect.name == "sqlite"

    @property
    def location(self) -> str:
        """Where the database is, for messages: a file path or user@host:port/db, no password."""
        url = self._engine.url
        if self.is_sqlite:
            return f"SQLite file {sqlite_file(url) or ':memory:'}"
        user = f"{url.username}@" if url.username else ""
        port = f":{url.port}" if url.port else ""
        return f"PostgreSQL {user}{url.host or 'localhost'}{port}/{url.database or ''}"

    def session(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A session for reading; write in ``transaction()`` (see the class docstring).

        Connection failures escape as ``StorageError`` naming the database.
        """
        return self._session(self._sessions)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error.

        On SQLite it waits for the write gate first and begins ``IMMEDIATE``.
        """
        async with self._writing(), self._session(self._write_sessions) as session:
            async with session.begin():
                yield session

    @asynccontextmanager
    async def exclusive_transaction(self, *, lock_key: int) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction no other ``lock_key`` holder runs beside.

        PostgreSQL takes a transaction-scoped advisory lock on ``lock_key``; SQLite takes the
        write gate, like ``transaction()``, and starts with ``BEGIN IMMEDIATE``, which holds
        the write lock of the whole file. Both are released at commit or rollback. Used to
        serialize schema migrations and audit appends.
        """
        try:
            async with self._writing(), self._writer_engine.connect() as conn, conn.begin():
                if not self.is_sqlite:
                    await conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key}
                    )
                yield conn
        except _DRIVER_ERRORS as exc:
            if not _is_unavailable(exc):
                raise
            raise self._unavailable(exc) from exc

    async def ping(self) -> None:
        """Run ``SELECT 1``; raises ``StorageError`` naming the database when it fails."""
        try:
            async with self._engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except _DRIVER_ERRORS as exc:
            raise self._unavailable(exc) from exc

    async def current_revision(self) -> str | None:
        """The Alembic revision the schema is at; ``None`` for a database never migrated."""
        try:
            async with self._engine.connect() as conn:
                present = await conn.run_sync(_has_version_table)
                if not present:
                    return None
                rows = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
        except _DRIVER_ERRORS as exc:
            raise self._unavailable(exc) from exc
        if len(rows) > 1:
            heads = ", ".join(sorted(str(row[0]) for row in rows))
            raise StorageError(f"{self.location} has several schema heads ({heads})")
        return str(rows[0][0]) if rows else None

    def insert(self, table: type[Any]) -> Any:
        """An INSERT that supports ``on_conflict_do_*``: both backends have ON CONFLICT,
        but SQLAlchemy spells it per dialect."""
        if self.is_sqlite:
            return sqlite.insert(table)
        return postgresql.insert(table)

    async def close(self) -> None:
        """Close every pooled connection."""
        await self._engine.dispose()

    def __repr__(self) -> str:
        return f"Database({self.location!r})"

    @asynccontextmanager
    async def _session(
        self, sessions: async_sessionmaker[AsyncSession]
    ) -> AsyncIterator[AsyncSession]:
        try:
            async with sessions() as session:
                yield session
        except _DRIVER_ERRORS as exc:
            if not _is_unavailable(exc):
                raise  # a statement's own error (a constraint, say) is the caller's business
            raise self._unavailable(exc) from exc

    def _writing(self) -> AbstractAsyncContextManager[None]:
        # SQLite: one in-process writer at a time (why: sqlite_inline). PostgreSQL: nothing.
        if self._write_gate is None:
            return nullcontext()
        return self._write_gate.hold()

    def _unavailable(self, exc: BaseException) -> StorageError:
        reason = _short_reason(exc)
        password = self._engine.url.password
        if password:
            # Drivers do not echo passwords today; make sure a future one cannot leak it.
            reason = reason.replace(str(password), "***")
        return StorageError(f"cannot use the database ({self.location}): {reason}")


def rowcount(result: Any) -> int:
    """Rows a DML statement touched (``Session.execute`` is typed more loosely than it is)."""
    return int(cast("CursorResult[Any]", result).rowcount)


def sqlite_file(url: URL) -> str | None:
    """The file of a SQLite URL; None for in-memory and ``file:`` URI databases (and for
    any other backend)."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def _ensure_parent_dir(url: URL) -> None:
    path = Path(sqlite_file(url) or "")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"cannot create the directory of SQLite file {path}: {exc.strerror}"
        ) from exc


def _sqlite_connect(
    dbapi_connection: Any, connection_record: ConnectionPoolEntry, *, busy_timeout_ms: int
) -> None:
    # Take BEGIN away from the sqlite3 module: in its legacy mode it skips BEGIN before
    # SELECT and DDL, which breaks repeatable reads and makes migrations non-atomic.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # busy_timeout first: switching to WAL needs a lock, and without the timeout a
        # connection opened while another process writes fails at once with "locked".
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # A deferred BEGIN whose first statement writes waits for the lock (busy_timeout); one
    # that read first may fail at once when upgrading, hence IMMEDIATE where asked for.
    immediate = conn.get_execution_options().get(_BEGIN_IMMEDIATE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _has_version_table(conn: Connection) -> bool:
    return inspect(conn).has_table("alembic_version")


def _is_unavailable(exc: BaseException) -> bool:
    # Connecting failed (no statement attached), the connection broke, or the driver
    # reports an operational problem (locked file, server shutting down).
    if isinstance(exc, OSError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    return (
        exc.statement is None
        or exc.connection_invalidated
        or isinstance(exc, OperationalError | InterfaceError)
    )


def _short_reason(exc: BaseException) -> str:
    # SQLAlchemy wraps the driver's error; its own text adds the SQL and a help link.
    orig = getattr(exc, "orig", None)
    inner = orig if isinstance(orig, BaseException) else exc
    reason = str(inner).strip() or type(inner).__name__
    return reason.splitlines()[0]
