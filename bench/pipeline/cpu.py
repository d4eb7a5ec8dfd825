"""CPU time of the benchmark's processes, of PostgreSQL, and of the whole machine, per window.

What is left of the machine's busy time once the replicas, the fake, the load generator
and PostgreSQL are taken off (``other``) is other programs' load plus kernel threads (disk
journal, network softirqs: some of it on our behalf). On a shared machine, a figure far
above the one of a quiet run says the run shared the two cores with something else.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.provider_overhead.run import cpu_seconds
from bench.proxy_compare.procstat import cpu_jiffies, cpu_seconds_with_reaped


def machine_busy_seconds() -> float:
    """CPU time all cores spent not idle since boot (``/proc/stat``), in seconds."""
    busy = sum(busy for busy, _ in cpu_jiffies().values())
    return busy / os.sysconf("SC_CLK_TCK")


def postgres_seconds() -> dict[int, float]:
    """CPU seconds of every PostgreSQL server process now running, by pid.

    The postmaster's figure includes its exited children: backends of connections that
    were opened and closed meanwhile (a pool's overflow connections) are not missed.
    """
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == "postgres":
                found[int(entry.name)] = cpu_seconds_with_reaped(int(entry.name))
        except (FileNotFoundError, ProcessLookupError):
            continue  # gone while we looked
    return found


class CpuMeter:
    """CPU seconds used by groups of processes, PostgreSQL and the machine, from ``start``."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self._groups = groups
        self._started = 0.0
        self._before: dict[str, float] = {}
        self._postgres: dict[int, float] = {}

    def _now(self) -> dict[str, float]:
        taken = {name: sum(cpu_seconds(p) for p in pids) for name, pids in self._groups.items()}
        return taken | {"machine": machine_busy_seconds()}

    def start(self) -> None:
        """Begin the window."""
        self._started, self._before = time.monotonic(), self._now()
        self._postgres = postgres_seconds()

    def read(self) -> tuple[float, dict[str, float]]:
        """(seconds since ``start``, CPU seconds of each group, ``postgres``, ``machine`` and
        ``other`` since then). A PostgreSQL process started in the window counts whole."""
        now = self._now()
        used = {k: now[k] - self._before[k] for k in now}
        postgres = postgres_seconds()
        used["postgres"] = sum(t - self._postgres.get(pid, 0.0) for pid, t in postgres.items())
        ours = sum(used[name] for name in self._groups) + used["postgres"]
        used["other"] = max(0.0, used["machine"] - ours)
        return time.monotonic() - self._started, used
