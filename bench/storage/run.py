"""SQLite storage latency and the chat path it dominates: ``python -m bench.storage.run``.

    .venv/bin/python -m bench.storage.run [--rounds 5] [--ops 200] [--messages 50]
                                          [--loop uvloop|asyncio]

1. Storage round trips on a fresh SQLite file, through ``Database``: a read session
   (``async with db.session(): SELECT 1``) and an insert transaction
   (``async with db.transaction(): INSERT``), in ms per operation.
2. ``POST /api/chat`` in-process (ASGI transport, no sockets; ``switchboard init`` +
   ``migrate`` in a temporary folder, the offline ``echo`` provider): ms per message one
   after another, then 200 messages with 32 in flight (distinct users, so distinct
   conversations and rate-limit buckets) in messages per second.

Every figure is the best of ``--rounds`` rounds: on a shared machine the slower rounds mostly
measure the neighbours. Wall time, plus the CPU time of this process (all its threads) per
message; single process, nothing pinned.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import text

from core.storage.db import Database
from gateway.cli import main as cli_main
from gateway.config_loader import load_config
from gateway.redaction import SecretRedactor
from gateway.server import build_app

CONCURRENT_MESSAGES = 200
IN_FLIGHT = 32
WARM_UP = 5


async def _best_ms_per_op(
    operation: Callable[[], Awaitable[None]], *, rounds: int, ops: int
) -> float:
    for _ in range(WARM_UP):
        await operation()
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(ops):
            await operation()
        best = min(best, (time.perf_counter() - started) / ops * 1000)
    return best


async def storage_round_trips(folder: Path, *, rounds: int, ops: int) -> dict[str, float]:
    """ms per read session and per insert transaction on a fresh SQLite file."""
    db = Database.open(f"sqlite+aiosqlite:///{folder / 'bench.db'}")
    try:
        async with db.transaction() as session:
            await session.execute(text("CREATE TABLE bench_rows (value INTEGER)"))

        async def select_one() -> None:
            async with db.session() as session:
                await session.execute(text("SELECT 1"))

        async def insert_one() -> None:
            async with db.transaction() as session:
                await session.execute(text("INSERT INTO bench_rows (value) VALUES (1)"))

        return {
            "session select": await _best_ms_per_op(select_one, rounds=rounds, ops=ops),
            "insert transaction": await _best_ms_per_op(insert_one, rounds=rounds, ops=ops),
        }
    finally:
        await db.close()


def _prepare_gateway(folder: Path) -> None:
    config = folder / "switchboard.toml"
    with contextlib.redirect_stdout(io.StringIO()):
        if cli_main(["init", "--dir", str(folder)]) != 0:
            raise SystemExit("switchboard init failed")
        if cli_main(["migrate", "--config", str(config)]) != 0:
            raise SystemExit("switchboard migrate failed")


async def _chat(client: httpx.AsyncClient, *, user: str, message: str) -> None:
    response = await client.post("/api/chat", json={"message": message, "user": user})
    if response.status_code != 200:
        raise SystemExit(f"POST /api/chat answered {response.status_code}: {response.text}")


async def chat_path(folder: Path, *, rounds: int, messages: int) -> dict[str, float]:
    """Sequential ms/message (best round's mean and median) and concurrent messages/s of
    the gateway ``_prepare_gateway`` set up in ``folder``."""
    config = folder / "switchboard.toml"
    app = build_app(load_config(config), redactor=SecretRedactor())
    token = (folder / "data" / "admin.token").read_text().strip()
    results = dict.fromkeys(
        ["sequential ms/message", "sequential p50 ms", "sequential CPU ms/message"], float("inf")
    )
    results["concurrent messages/s"] = 0.0
    results["concurrent CPU ms/message"] = float("inf")
    async with (
        LifespanManager(app, startup_timeout=30) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app),
            base_url="http://gateway",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        ) as client,
    ):
        for index in range(WARM_UP):
            await _chat(client, user=f"warm{index}", message=f"warm-up {index}")
        for round_index in range(rounds):
            took = []
            cpu_started = time.process_time()
            for index in range(messages):
                started = time.perf_counter()
                await _chat(client, user=f"s{round_index}-{index}", message=f"hello {index}")
                took.append((time.perf_counter() - started) * 1000)
            results["sequential ms/message"] = min(
                results["sequential ms/message"], statistics.fmean(took)
            )
            results["sequential p50 ms"] = min(
                results["sequential p50 ms"], statistics.median(took)
            )
            cpu_ms = (time.process_time() - cpu_started) / messages * 1000
            results["sequential CPU ms/message"] = min(results["sequential CPU ms/message"], cpu_ms)
        in_flight = asyncio.Semaphore(IN_FLIGHT)

        async def one(user: str) -> None:
            async with in_flight:
                await _chat(client, user=user, message=f"hi from {user}")

        for round_index in range(rounds):
            started, cpu_started = time.perf_counter(), time.process_time()
            async with asyncio.TaskGroup() as group:
                for index in range(CONCURRENT_MESSAGES):
                    group.create_task(one(f"c{round_index}-{index}"))
            rate = CONCURRENT_MESSAGES / (time.perf_counter() - started)
            results["concurrent messages/s"] = max(results["concurrent messages/s"], rate)
            cpu_ms = (time.process_time() - cpu_started) / CONCURRENT_MESSAGES * 1000
            results["concurrent CPU ms/message"] = min(results["concurrent CPU ms/message"], cpu_ms)
    return results


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if name == "asyncio":
        return None
    import uvloop  # what `switchboard run` uses where it is installed

    return uvloop.new_event_loop


def run(*, rounds: int, ops: int, messages: int, loop: str) -> None:
    """Print every figure, one per line."""
    with (
        tempfile.TemporaryDirectory(prefix="sb-bench-storage-") as storage_folder,
        tempfile.TemporaryDirectory(prefix="sb-bench-chat-") as chat_folder,
        asyncio.Runner(loop_factory=_loop_factory(loop)) as runner,
    ):
        storage = runner.run(storage_round_trips(Path(storage_folder), rounds=rounds, ops=ops))
        _prepare_gateway(Path(chat_folder))
        chat = runner.run(chat_path(Path(chat_folder), rounds=rounds, messages=messages))
    print(f"event loop: {loop}, best of {rounds} rounds")
    for name, value in storage.items():
        print(f"{name:28} {value:7.3f} ms")
    print(
        f"{'POST /api/chat sequential':28} {chat['sequential ms/message']:7.2f} ms/message "
        f"(p50 {chat['sequential p50 ms']:.2f} ms, "
        f"CPU {chat['sequential CPU ms/message']:.2f} ms/message)"
    )
    print(
        f"{'POST /api/chat 32 in flight':28} {chat['concurrent messages/s']:7.1f} messages/s "
        f"({CONCURRENT_MESSAGES} messages, "
        f"CPU {chat['concurrent CPU ms/message']:.2f} ms/message)"
    )


def main() -> None:
    """Parse the command line and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ops", type=int, default=200, help="storage operations per round")
    parser.add_argument("--messages", type=int, default=50, help="sequential messages per round")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = parser.parse_args()
    run(rounds=args.rounds, ops=args.ops, messages=args.messages, loop=args.loop)


if __name__ == "__main__":
    main()
