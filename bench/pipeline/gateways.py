"""The gateway under test: a workspace, its database, and its ``switchboard run`` replicas.

The workspace comes from ``switchboard init`` (the ``echo`` provider is its default), edited
the way an operator would: the Telegram channel in webhook mode against the fake, no
per-user rate limit (the sample's 20 a minute would refuse a benchmark user after a
burst of 5; each message here comes from a new user, but ``--chats`` reuses them), and
for PostgreSQL a ``[storage] url`` naming a database this benchmark creates and drops.
Every replica runs the same config file on its own ``--port``.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import asyncpg  # type: ignore[import-untyped]
import httpx

from bench.provider_overhead.run import wait_until_up

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
# What the fake and the replicas agree on; nothing real.
TOKEN = "123456:BENCH-token"  # noqa: S105
WEBHOOK_SECRET = "bench-secret_0123456789"  # noqa: S105
ENV = {"SB_BENCH_TG_TOKEN": TOKEN, "SB_BENCH_TG_SECRET": WEBHOOK_SECRET}
READY_TIMEOUT_S = 60.0


def _replace_once(text: str, old: str, new: str) -> str:
    """``text`` with ``old`` replaced; stops when the sample config no longer has it."""
    if text.count(old) != 1:
        raise SystemExit(f"the sample config changed: {old!r} is not in it exactly once")
    return text.replace(old, new)


def write_workspace(
    workdir: Path, *, telegram_url: str, storage_url: str | None, pool_size: int | None = None
) -> Path:
    """``switchboard init`` in ``workdir``, edited for the benchmark; returns the config.

    ``pool_size``: ``[storage] pool_size`` (connections per replica) instead of the default.
    """
    subprocess.run(
        [sys.executable, "-m", "gateway", "init", "--dir", str(workdir)],
        check=True,
        capture_output=True,
    )
    config = workdir / "switchboard.toml"
    text = config.read_text()
    text = _replace_once(text, "[gateway]\n", '[gateway]\nlog_level = "warning"\n')
    text = _replace_once(text, "rate_per_minute = 20", "rate_per_minute = 0")
    sqlite_url = 'url = "sqlite+aiosqlite:///./data/switchboard.db"'
    storage = f'url = "{storage_url}"' if storage_url else sqlite_url
    if pool_size is not None:
        storage += f"\npool_size = {pool_size}"
    text = _replace_once(text, sqlite_url, storage)
    text += f"""
[channels.telegram]
token = "env:SB_BENCH_TG_TOKEN"
mode = "webhook"
secret_token = "env:SB_BENCH_TG_SECRET"
webhook_url = "https://bench.invalid/telegram/webhook"
api_base = "{telegram_url}"
"""
    config.write_text(text)
    subprocess.run(
        [sys.executable, "-m", "gateway", "migrate", "--config", str(config)],
        check=True,
        capture_output=True,
        env=os.environ | ENV,
    )
    return config


async def create_database() -> str:
    """A new, empty PostgreSQL database; returns its name."""
    name = f"sb_bench_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name


async def postgres_sessions(name: str) -> int:
    """Connections ever opened to database ``name`` (``pg_stat_database.sessions``)."""
    admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        query = "SELECT sessions FROM pg_stat_database WHERE datname = $1"
        return int(await admin.fetchval(query, name))
    finally:
        await admin.close()


async def postgres_version() -> str:
    """The PostgreSQL server's version."""
    admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        return str(await admin.fetchval("SHOW server_version"))
    finally:
        await admin.close()


async def drop_database(name: str) -> None:
    """Drop the benchmark's database (its replicas are stopped by then)."""
    admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


class Replicas:
    """``switchboard run`` processes on one config file, each on its own port."""

    def __init__(
        self, config: Path, ports: Sequence[int], *, log_dir: Path, unpaced: bool = False
    ) -> None:
        self.config = config
        self.ports = list(ports)
        # ``unpaced``: through bench.pipeline.unpaced_gateway, without the send pacing
        self._module = "bench.pipeline.unpaced_gateway" if unpaced else "gateway"
        self._log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []

    def start(self) -> None:
        """Start every replica and wait until its Telegram webhook is set."""
        for index, port in enumerate(self.ports):
            log = (self._log_dir / f"replica{index}.log").open("wb")
            self._logs.append(log)
            command = [sys.executable, "-m", self._module, "run", "--config", str(self.config)]
            self.processes.append(
                subprocess.Popen(
                    [*command, "--port", str(port)],
                    cwd=ROOT,
                    env=os.environ | ENV,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        for port, process in zip(self.ports, self.processes, strict=True):
            wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
            _wait_for_telegram(port)

    @property
    def pids(self) -> list[int]:
        """The replicas' process ids."""
        return [p.pid for p in self.processes]

    def exited(self) -> list[int]:
        """Indexes of replicas that are no longer running."""
        return [i for i, p in enumerate(self.processes) if p.poll() is not None]

    def log_counts(self, events: Sequence[str]) -> dict[str, int]:
        """How often each ``event=...`` appears in the replicas' logs (errors, retries)."""
        text = "".join(
            (self._log_dir / f"replica{i}.log").read_text(errors="replace")
            for i in range(len(self.processes))
        )
        return {event: text.count(f"event={event}") for event in events}

    def stop(self) -> None:
        """SIGTERM every replica and wait for it."""
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in self._logs:
            log.close()


def _wait_for_telegram(port: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).json()
        if ready["checks"]["channels"].get("telegram", {}).get("connected"):
            return
        time.sleep(0.1)
    raise SystemExit(f"the replica on port {port} did not connect to the Telegram fake")
