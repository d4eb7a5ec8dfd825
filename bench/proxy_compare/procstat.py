"""CPU time and resident memory of a whole process tree, read from /proc.

A proxy may run as several processes (a supervisor and its workers, a Node process and
its helpers), so its cost is the sum over the tree: the live processes' own CPU time plus
what their already-reaped children left in ``cutime``/``cstime``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Memory:
    """Resident memory of a process tree in KiB: now (VmRSS) and peak (VmHWM), summed."""

    rss_kib: int
    hwm_kib: int


def tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants, parents first."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue  # the process ended while we looked
        children.setdefault(ppid, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        current = queue.pop(0)
        found.append(current)
        queue.extend(sorted(children.get(current, [])))
    return found


def cpu_seconds_with_reaped(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and of its children that have exited and were
    reaped (utime, stime, cutime, cstime). Raises ``FileNotFoundError`` once it is gone."""
    fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid``'s tree, reaped children included."""
    total = 0.0
    for member in tree(pid):
        try:
            total += cpu_seconds_with_reaped(member)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def tree_memory(pid: int) -> Memory:
    """VmRSS and VmHWM summed over ``pid``'s tree (a peak sum: each process's own peak)."""
    rss = hwm = 0
    for member in tree(pid):
        try:
            status = (PROC / str(member) / "status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm += int(line.split()[1])
    return Memory(rss_kib=rss, hwm_kib=hwm)


def cpu_jiffies() -> dict[int, tuple[int, int]]:
    """Per CPU: (busy, total) jiffies since boot, from /proc/stat.

    Busy is everything but idle and iowait, steal included: time the hypervisor gave to
    another guest was not ours either.
    """
    found: dict[int, tuple[int, int]] = {}
    for line in (PROC / "stat").read_text().splitlines():
        name, *values = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        counts = [int(v) for v in values[:8]]
        total = sum(counts)
        found[int(name[3:])] = (total - counts[3] - counts[4], total)
    return found


def busy_fractions(
    before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]
) -> dict[int, float]:
    """How busy each CPU was between two ``cpu_jiffies`` readings, 0..1."""
    fractions: dict[int, float] = {}
    for cpu, (busy, total) in after.items():
        busy0, total0 = before.get(cpu, (0, 0))
        fractions[cpu] = (busy - busy0) / max(total - total0, 1)
    return fractions
