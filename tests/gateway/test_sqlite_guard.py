"""One gateway process per SQLite file: a second ``switchboard run`` is refused, clearly."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from core.errors import StorageError
from gateway.sqlite_guard import one_gateway_per_sqlite_file, sqlite_file_of
from tests.gateway.test_crash import gateway, kill9


def test_the_lock_is_exclusive_and_names_its_holder(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'switchboard.db'}"
    with one_gateway_per_sqlite_file(url):
        with pytest.raises(StorageError) as refused, one_gateway_per_sqlite_file(url):
            pass
        assert f"pid {os.getpid()}" in refused.value.message
        assert "PostgreSQL" in refused.value.message
    with one_gateway_per_sqlite_file(url):  # released at the end of the block
        pass


def test_postgresql_and_memory_databases_take_no_file_lock() -> None:
    assert sqlite_file_of("postgresql+asyncpg://postgres@127.0.0.1/x") is None
    assert sqlite_file_of("sqlite+aiosqlite:///:memory:") is None
    with one_gateway_per_sqlite_file("postgresql+asyncpg://postgres@127.0.0.1/x"):
        pass


@pytest.mark.slow
async def test_a_second_gateway_on_the_file_is_refused_until_the_first_is_gone(
    workspace: Path,
) -> None:
    async def second_run() -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "gateway", "run", "--config", str(workspace)),
            *("--port", "0"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(process.communicate(), timeout=60)
        return process.returncode or 0, err.decode()

    async with gateway(workspace) as (_, first):
        code, err = await second_run()
        assert code == 1
        assert f"another switchboard run (pid {first.pid}) already serves" in err
        await kill9(first)  # the kernel releases the lock of a killed process
    async with gateway(workspace) as (api, _):
        assert (await api.get("/healthz")).status_code == 200
