"""Resident memory of a running gateway with many stored and many active conversations.

    .venv/bin/python -m bench.memory.run [--stored 10000] [--active 1000] [--turns 3]

1. ``switchboard init`` + ``migrate`` in a temporary folder (SQLite, the ``echo`` provider).
2. ``--stored`` conversations of six messages each are written straight into the database
   through the conversation repository (what months of traffic leave behind).
3. ``switchboard run`` starts; its resident set size (VmRSS) is read once it is healthy.
4. ``--active`` conversations each get ``--turns`` messages through ``POST /api/chat``
   (64 at a time), so the gateway holds their locks, rate-limit buckets and histories.
5. VmRSS and its peak (VmHWM) are read again. Target (issue #8): under 200 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.provider_overhead.run import free_port, wait_until_up
from core.storage.conversation_repo import ConversationRepository
from core.storage.db import Database
from core.types import ChatMessage, ConversationKey, Role

ROOT = Path(__file__).resolve().parents[2]
TARGET_MB = 200


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MB (1 MB = 2**20 bytes)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields


async def seed(db_url: str, *, count: int) -> None:
    """``count`` conversations of three exchanges each, stored as the orchestrator stores them."""
    db = Database.open(db_url)
    repo = ConversationRepository(db)
    now = datetime.now(UTC)
    try:
        for index in range(count):
            key = ConversationKey(platform="telegram", chat=str(100_000 + index))
            messages = []
            for turn in range(3):
                question = f"question {turn} of conversation {index}: how is the disk usage?"
                answer = f"answer {turn}: the disk is {40 + turn}% full, nothing to worry about."
                messages.append((ChatMessage(role=Role.USER, content=question), 16))
                messages.append((ChatMessage(role=Role.ASSISTANT, content=answer), 18))
            await repo.append(key, messages, action_id=None, now=now)
    finally:
        await db.close()


async def drive(port: int, token: str, *, active: int, turns: int) -> int:
    """``turns`` messages in each of ``active`` conversations; returns how many got a reply."""
    answered = 0
    limit = asyncio.Semaphore(64)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60
    ) as client:

        async def conversation(index: int) -> None:
            nonlocal answered
            for turn in range(turns):
                async with limit:
                    answer = await client.post(
                        "/api/chat",
                        json={
                            "message": f"message {turn} in conversation {index}",
                            "user": f"user{index}",
                        },
                    )
                if answer.status_code == 200 and answer.json().get("reply"):
                    answered += 1

        await asyncio.gather(*(conversation(i) for i in range(active)))
    return answered


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stored", type=int, default=10_000)
    parser.add_argument("--active", type=int, default=1_000)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results.json"))
    args = parser.parse_args()
    python = sys.executable
    workdir = Path(tempfile.mkdtemp(prefix="sb-memory-"))
    subprocess.run(
        [python, "-m", "gateway", "init", "--dir", str(workdir)], check=True, capture_output=True
    )
    config = workdir / "switchboard.toml"
    port = free_port()
    text = config.read_text().replace("port = 8080", f"port = {port}")
    # The API caller is one "user" per conversation here; no per-minute limit in the way.
    config.write_text(text.replace("[gateway]\n", '[gateway]\nlog_level = "warning"\n'))
    subprocess.run(
        [python, "-m", "gateway", "migrate", "--config", str(config)],
        check=True,
        capture_output=True,
    )
    started = time.perf_counter()
    asyncio.run(
        seed(f"sqlite+aiosqlite:///{workdir / 'data' / 'switchboard.db'}", count=args.stored)
    )
    print(f"stored {args.stored} conversations in {time.perf_counter() - started:.1f} s")
    gateway = subprocess.Popen([python, "-m", "gateway", "run", "--config", str(config)], cwd=ROOT)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", gateway)
        token = (workdir / "data" / "admin.token").read_text().strip()
        idle = memory_mb(gateway.pid)
        print(f"after start-up: {idle['VmRSS']:.0f} MB resident")
        started = time.perf_counter()
        answered = asyncio.run(drive(port, token, active=args.active, turns=args.turns))
        elapsed = time.perf_counter() - started
        busy = memory_mb(gateway.pid)
        results = {
            "stored_conversations": args.stored,
            "active_conversations": args.active,
            "messages_sent": args.active * args.turns,
            "messages_answered": answered,
            "seconds": round(elapsed, 1),
            "rss_mb_after_start": round(idle["VmRSS"], 1),
            "rss_mb_after_load": round(busy["VmRSS"], 1),
            "peak_rss_mb": round(busy["VmHWM"], 1),
            "target_mb": TARGET_MB,
            "machine": {
                "python": platform.python_version(),
                "platform": platform.platform(),
                "date": time.strftime("%Y-%m-%d"),
            },
        }
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(results, indent=2))
    finally:
        gateway.terminate()
        gateway.wait(timeout=30)


if __name__ == "__main__":
    main()
