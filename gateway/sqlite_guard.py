"""One ``switchboard run`` per SQLite database file.

Several replicas need PostgreSQL: their shared locks (one Telegram poller, one Discord
gateway connection, one outbox deliverer per platform) are PostgreSQL advisory locks. On
SQLite those locks are only this process's own, so a second gateway on the same file
would poll, connect and deliver beside the first. This guard makes that a clear start-up
error instead: an exclusive ``flock`` on ``<database>.gateway-lock``, held for the life of
the process and released by the kernel however it ends (kill -9 included). CLI commands
(``chat``, ``approvals``...) do not take it: they may run beside the gateway.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

from core.errors import StorageError
from core.storage.db import sqlite_file

LOCK_SUFFIX = ".gateway-lock"


def sqlite_file_of(url: str) -> Path | None:
    """The file of a SQLite URL; None for PostgreSQL and in-memory databases."""
    database = sqlite_file(make_url(url))
    return Path(database) if database is not None else None


@contextlib.contextmanager
def one_gateway_per_sqlite_file(url: str) -> Iterator[None]:
    """Hold the file's gateway lock for the block; ``StorageError`` if another process has it."""
    path = sqlite_file_of(url)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + LOCK_SUFFIX)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise StorageError(
                f"another switchboard run (pid {holder}) already serves the SQLite database "
                f"{path}; SQLite supports one gateway process. Stop that one, or run several "
                'replicas on PostgreSQL ([storage] url = "postgresql+asyncpg://...")'
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
