"""The message pipeline from a Telegram webhook POST to the reply at the Bot API (issues #6, #8).

    .venv/bin/python -m bench.pipeline.run [--backend sqlite|postgres|all] [--replicas 1|2]
        [--seconds 15] [--rate 50] [--in-flight 64] [--chats 0] [--unpaced]

For each combination (default: SQLite x1, PostgreSQL x1, PostgreSQL x2; two replicas on one
SQLite file is not a supported set-up and is skipped):

1. The Telegram Bot API fake starts in its own process (``bench.pipeline.telegram_server``).
2. ``switchboard init`` + ``migrate`` in a temporary folder: the ``echo`` provider, durable
   writes (the defaults), SQLite on disk or a fresh PostgreSQL database on 127.0.0.1:5432
   (created here, dropped at the end), the Telegram channel in webhook mode, no per-user
   rate limit. The replicas are ``switchboard run`` processes on the same config file.
3. Idle: the replicas' CPU over a few seconds without load (their timers and sweepers).
4. Saturation: a closed loop keeps ``--in-flight`` messages waiting for their reply. Once
   as many replies came back (the ramp, not counted), ``--seconds`` are measured:
   messages/s, CPU-ms per message of the replicas together, the latency of the messages
   sent in that window.
5. Latency: an open loop at ``--rate`` messages/s for ``--seconds``; p50/p95/p99 of reply
   at the fake minus POST sent. When the saturation figure is below ``--rate``, the rate is
   lowered to half of it (the result says so), unless ``--strict-rate``: past its capacity
   the queue only grows and the percentiles measure the length of the run.
6. After each load, the replies still due are awaited (``--drain-quiet`` s without one ends
   the wait); every message must have exactly one reply, with the echo of its text.

Updates are POSTed round-robin over the replicas, each from a new private chat (``--chats N``:
round-robin over N chats instead). The Telegram channel paces its sends to Telegram's
limits (``channels/telegram/pacing.py``: 30 a second per process, one a second per chat,
a streamed preview and its final edit included); ``--unpaced`` lifts them
(``bench.pipeline.unpaced_gateway``) to measure the rest of the pipeline apart from them.
The machine's busy cores are recorded with each load: on a shared machine, compare them
with what the replicas, the fake and the load generator used.
Results go to ``bench/pipeline/results.json`` with the machine's facts; a table is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx

from bench.pipeline import gateways
from bench.pipeline.cpu import CpuMeter
from bench.pipeline.loadgen import LoadGenerator, ReplyWatcher, UpdateFeed, Webhooks
from bench.pipeline.summary import correctness, phase_summary, table
from bench.provider_overhead.run import free_port, wait_until_up

ROOT = Path(__file__).resolve().parents[2]
COMBINATIONS = [("sqlite", 1), ("postgres", 1), ("postgres", 2)]
IDLE_S = 3.0  # CPU of the idle replicas is measured over this long before the load
LOG_EVENTS = (
    "processing_failed",
    "delivery_retry",
    "delivery_failed",
    "delivery_crashed",
    "settle_failed",
)
T = TypeVar("T")


async def measure(
    args: argparse.Namespace, *, fake_url: str, fake_pid: int, ports: list[int], pids: list[int]
) -> dict[str, Any]:
    """Idle CPU, saturation, then fixed rate, against running replicas; each phase's summary."""
    meter = CpuMeter({"replicas": pids, "fake": [fake_pid], "loadgen": [os.getpid()]})
    async with (
        httpx.AsyncClient(base_url=fake_url, timeout=30) as fake,
        ReplyWatcher(fake) as watcher,
    ):
        load = LoadGenerator(
            webhooks=Webhooks(ports, gateways.WEBHOOK_SECRET),
            feed=UpdateFeed(fake),
            watcher=watcher,
        )
        meter.start()
        await asyncio.sleep(IDLE_S)
        seconds, idle = meter.read()
        idle_cpu = idle["replicas"] / seconds
        saturation = await _saturate(
            args, load=load, watcher=watcher, meter=meter, idle_cpu=idle_cpu
        )
        rate = args.rate
        if not args.strict_rate and saturation["messages_per_s"] < rate:
            rate = max(0.5, round(saturation["messages_per_s"] / 2, 1))
        fixed = await _fixed_rate(
            args, rate=rate, load=load, watcher=watcher, meter=meter, idle_cpu=idle_cpu
        )
        return {
            "idle_cpu_utilisation": round(idle_cpu, 3),
            "idle": _cores(idle, seconds),
            "saturation": saturation,
            "fixed_rate": fixed,
            "ramp": correctness(watcher, "ramp"),
            "unmatched_replies": watcher.unmatched,
            "streamed_previews": watcher.previews,
            "repeated_final_edits": watcher.repeated_edits,
            "answers_shown_by_preview": watcher.shown_by_preview,
        }


async def _saturate(
    args: argparse.Namespace,
    *,
    load: LoadGenerator,
    watcher: ReplyWatcher,
    meter: CpuMeter,
    idle_cpu: float,
) -> dict[str, Any]:
    """The closed loop: a ramp until ``in_flight`` replies came back, then ``seconds`` measured.

    Only the measured window counts (rate, CPU, the latency of the messages sent in it):
    at the start every slot is still waiting for its first reply. Besides the replicas' CPU,
    the share of the fake and of this load generator (neither may be what limits the rate)
    and the busy cores of the whole machine are reported.
    """
    phase = "ramp"
    stop = asyncio.Event()
    started = time.monotonic()
    senders = asyncio.create_task(
        load.closed_loop(
            phase=lambda: phase,
            in_flight=args.in_flight,
            stop=stop,
            reply_timeout_s=args.reply_timeout,
        )
    )
    try:
        while (
            watcher.answered_since(started) < args.in_flight
            and time.monotonic() - started < args.ramp_max
        ):
            await asyncio.wait({senders}, timeout=0.05)  # returns at once if they crashed
            watcher.check()
            if senders.done():
                break
        phase, window_start = "saturation", time.monotonic()
        meter.start()
        await asyncio.wait({senders}, timeout=args.seconds)
        seconds, used = meter.read()
    finally:
        stop.set()
        await senders
    await watcher.drain(quiet_s=args.drain_quiet)
    summary = phase_summary(
        watcher,
        "saturation",
        window=(window_start, window_start + seconds),
        cpu_s=used["replicas"],
        idle_cpu=idle_cpu,
    )
    return summary | {
        "in_flight": args.in_flight,
        "ramp_s": round(window_start - started, 1),
        "fake_cpu_utilisation": round(used["fake"] / seconds, 2),
        "loadgen_cpu_utilisation": round(used["loadgen"] / seconds, 2),
        **_cores(used, seconds),
    }


async def _fixed_rate(
    args: argparse.Namespace,
    *,
    rate: float,
    load: LoadGenerator,
    watcher: ReplyWatcher,
    meter: CpuMeter,
    idle_cpu: float,
) -> dict[str, Any]:
    """The open loop at ``rate``; CPU counted until the last reply, per message answered."""
    meter.start()
    window = await load.open_loop(phase="fixed", rate=rate, seconds=args.seconds)
    await watcher.drain(quiet_s=args.drain_quiet)
    elapsed, used = meter.read()
    summary = phase_summary(watcher, "fixed", window=window, cpu_s=used["replicas"])
    answered = max(summary["answered"], 1)
    busy = max(0.0, used["replicas"] - idle_cpu * elapsed)
    return summary | {
        "rate": rate,
        "rate_requested": args.rate,
        "cpu_ms_per_message": round(used["replicas"] * 1000 / answered, 2),
        "cpu_ms_per_message_above_idle": round(busy * 1000 / answered, 2),
        "cpu_utilisation": round(used["replicas"] / elapsed, 2),
        **_cores(used, elapsed),
    }


def run_combination(args: argparse.Namespace, backend: str, replicas: int) -> dict[str, Any]:
    """One backend with ``replicas`` replicas, from an empty workspace to the figures."""
    workdir = Path(tempfile.mkdtemp(prefix="sb-pipeline-"))
    fake_port = free_port()
    fake = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.pipeline.telegram_server",
            str(fake_port),
            gateways.TOKEN,
            "--chats",
            str(args.chats),
        ],
        cwd=ROOT,
    )
    fake_url = f"http://127.0.0.1:{fake_port}"
    database = None
    gateway: gateways.Replicas | None = None
    keep = args.keep
    try:
        wait_until_up(f"{fake_url}/_bench/replies", fake)
        storage_url = None
        if backend == "postgres":
            database = asyncio.run(gateways.create_database())
            storage_url = gateways.PG_URL.format(name=database)
        config = gateways.write_workspace(
            workdir, telegram_url=fake_url, storage_url=storage_url, pool_size=args.pool_size
        )
        ports = [free_port() for _ in range(replicas)]
        gateway = gateways.Replicas(config, ports, log_dir=workdir, unpaced=args.unpaced)
        gateway.start()
        figures = _run_async(
            measure(args, fake_url=fake_url, fake_pid=fake.pid, ports=ports, pids=gateway.pids)
        )
        if database is not None:
            # Each one is a fork and an authentication on the server: pool churn shows here.
            sessions = asyncio.run(gateways.postgres_sessions(database))
            sent = sum(figures[p]["sent"] for p in ("ramp", "saturation", "fixed_rate"))
            figures["postgres_sessions"] = sessions
            figures["postgres_sessions_per_message"] = round(sessions / max(sent, 1), 2)
        figures["replicas_exited"] = gateway.exited()
        figures["log_events"] = gateway.log_counts(LOG_EVENTS)
        keep = keep or _went_wrong(figures)
        figures["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
        return {"backend": backend, "replicas": replicas, "in_flight": args.in_flight} | figures
    finally:
        if gateway is not None:
            gateway.stop()
        fake.terminate()
        fake.wait(timeout=10)
        if keep:
            print(f"workspace kept (config, replica logs): {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        if database is not None and args.keep:
            print(f"database kept: {gateways.PG_URL.format(name=database)}", flush=True)
        elif database is not None:
            asyncio.run(gateways.drop_database(database))


def _cores(used: dict[str, float], seconds: float) -> dict[str, float]:
    """Busy cores of the whole machine, of PostgreSQL, and of the rest (``cpu.CpuMeter``)."""
    return {
        f"{name}_busy_cores": round(used[name] / seconds, 2)
        for name in ("machine", "postgres", "other")
    }


def _went_wrong(figures: dict[str, Any]) -> bool:
    """A message lost, answered twice or wrongly, a replica gone, or an error in a log."""
    phases = [figures["saturation"], figures["fixed_rate"], figures["ramp"]]
    counts = ("rejected", "missing", "duplicated", "wrong_text")
    return (
        any(phase[k] for phase in phases for k in counts)
        or bool(figures["replicas_exited"])
        or any(figures["log_events"].values())
    )


def _run_async(load: Coroutine[Any, Any, T]) -> T:
    """Run the load on uvloop when it is installed: less CPU per request on a 2-core box."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(load)
    return uvloop.run(load)


def source_tree() -> dict[str, Any]:
    """The commit measured, and the files changed on top of it (read-only git commands)."""

    def git(*argv: str) -> str:
        found = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True)
        return found.stdout

    changed = [line[3:] for line in git("status", "--porcelain").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "changed": changed}


def machine_facts(postgres_version: str | None) -> dict[str, Any]:
    """CPU, cores, Python, SQLite and PostgreSQL versions, date."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres_version,
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--replicas", type=int, choices=[1, 2], help="default: 1 and 2")
    parser.add_argument("--seconds", type=float, default=15.0, help="of each measured load")
    parser.add_argument("--rate", type=float, default=50.0, help="messages/s of the latency run")
    parser.add_argument("--strict-rate", action="store_true", help="never lower --rate")
    parser.add_argument("--in-flight", type=int, default=64, help="of the saturation run")
    parser.add_argument("--chats", type=int, default=0, help="0: a new chat per message")
    parser.add_argument(
        "--ramp-max", type=float, default=60.0, help="longest ramp of the saturation run (s)"
    )
    parser.add_argument("--reply-timeout", type=float, default=30.0, help="seconds")
    parser.add_argument("--drain-quiet", type=float, default=10.0, help="seconds")
    parser.add_argument(
        "--pool-size", type=int, help="[storage] pool_size of each replica (default: the config's)"
    )
    parser.add_argument(
        "--unpaced",
        action="store_true",
        help="lift the Telegram channel's send pacing (bench.pipeline.unpaced_gateway)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep workspaces and databases (a workspace is kept anyway when one went wrong)",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results.json"))
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    chosen = [
        (backend, replicas)
        for backend, replicas in COMBINATIONS
        if args.backend in ("all", backend) and args.replicas in (None, replicas)
    ]
    if not chosen:
        raise SystemExit("two replicas on one SQLite file is not a supported set-up")
    postgres_version = None
    if any(backend == "postgres" for backend, _ in chosen):
        postgres_version = asyncio.run(gateways.postgres_version())
    tree = source_tree()  # before the run: what the replicas were started from
    results = []
    for backend, replicas in chosen:
        print(f"--- {backend} x{replicas}", flush=True)
        results.append(run_combination(args, backend, replicas))
    settings = {
        k: getattr(args, k)
        for k in (
            *("seconds", "rate", "strict_rate", "in_flight", "chats", "ramp_max"),
            *("pool_size", "unpaced"),
        )
    }
    document = {
        "machine": machine_facts(postgres_version),
        "tree": tree,
        "settings": settings,
        "runs": results,
    }
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(table(results))
    print(f"\nfull results: {args.out}")


if __name__ == "__main__":
    main()
