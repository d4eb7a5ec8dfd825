"""What one proxy costs: throughput on one core, added latency at a fixed rate, CPU, memory.

Per mode (non-streaming, then streaming):
1. warm-up, closed loop, 2 s;
2. saturation: closed loop with ``concurrency`` connections for ``seconds``; requests/s,
   CPU-ms per request of the proxy's process tree, and how busy each CPU was: a proxy
   well below 100% of its core was held back by something else (other work on CPU 0, the
   load side on CPU 1, or its own waiting), so its requests/s is a lower bound;
3. latency: open loop at ``rate`` requests/s, taking turns with the same load sent
   straight to the upstream (loadgen.interleaved); added = proxy percentile minus direct
   percentile, for the whole answer and for its first body byte (first chunk of a stream).
   A proxy that cannot hold ``rate`` with headroom would only show its own queue growing,
   so it is measured at half of what it saturated at instead (see ``latency_rate``); the
   rate used is in the results.
After both modes: resident memory of the tree (VmRSS now, VmHWM peak).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from bench.provider_overhead.loadgen import Sample, Target, interleaved, saturate
from bench.provider_overhead.run import GATEWAY_CPU, HELPER_CPU, cpu_seconds, percentiles
from bench.proxy_compare.peers import progress
from bench.proxy_compare.procstat import (
    busy_fractions,
    cpu_jiffies,
    tree_cpu_seconds,
    tree_memory,
)
from bench.proxy_compare.proxies import CHAT_PATH, RunningProxy, chat_body

MODES = {"non-streaming": False, "streaming": True}
HEADROOM = 0.8
WARM_UP_S = 2.0


@dataclass(frozen=True)
class Settings:
    """How hard and how long to measure."""

    seconds: float
    rate: float
    concurrency: int
    upstream_port: int
    upstream_pid: int


def latency_rate(requested: float, capacity: float) -> float:
    """The open-loop rate for the latency phase.

    ``requested`` when the proxy saturated at least ``requested / HEADROOM``; otherwise half
    its capacity (at least 1/s), where queueing does not swamp the overhead being measured.
    """
    if requested <= HEADROOM * capacity:
        return requested
    return max(1.0, round(capacity / 2, 1))


def added(direct: list[Sample], via: list[Sample], attr: str) -> dict[str, float]:
    """Percentiles through the proxy minus the same percentiles direct, in ms."""
    base = percentiles([getattr(s, attr) for s in direct])
    proxied = percentiles([getattr(s, attr) for s in via])
    return {k: proxied[k] - base[k] for k in base}


async def measure_proxy(proxy: RunningProxy, settings: Settings) -> dict[str, Any]:
    """All figures of one running proxy."""
    pid = proxy.process.pid
    figures: dict[str, Any] = {"version": proxy.version, **proxy.details}
    for kind, stream in MODES.items():
        via = proxy.target(stream=stream)
        direct = Target(
            "127.0.0.1",
            settings.upstream_port,
            CHAT_PATH,
            chat_body("bench-model", stream=stream),
        )
        await saturate(via, concurrency=4, seconds=WARM_UP_S)
        progress(f"{proxy.name} {kind}: saturating for {settings.seconds:g} s")
        saturation = await _saturation(via, pid=pid, settings=settings)
        rate = latency_rate(settings.rate, saturation["requests_per_s"])
        progress(f"{proxy.name} {kind}: {rate:g} req/s against the upstream, turn about")
        await interleaved([direct, via], rate=rate, seconds=WARM_UP_S)
        before = tree_cpu_seconds(pid)
        direct_samples, via_samples = await interleaved(
            [direct, via], rate=rate, seconds=settings.seconds
        )
        cpu = tree_cpu_seconds(pid) - before
        figures[kind] = {
            "rate": rate,
            "requests": len(via_samples),
            "failures": sum(1 for s in via_samples if s.status != 200),
            "direct_ms": percentiles([s.total for s in direct_samples]),
            "proxy_ms": percentiles([s.total for s in via_samples]),
            "added_ms": added(direct_samples, via_samples, "total"),
            "added_first_byte_ms": added(direct_samples, via_samples, "first_byte"),
            "cpu_ms_per_request_at_rate": cpu * 1000 / max(len(via_samples), 1),
            "saturation": saturation,
        }
    memory = tree_memory(pid)
    figures["memory_mib"] = {"rss": memory.rss_kib / 1024, "hwm": memory.hwm_kib / 1024}
    return figures


async def _saturation(via: Target, *, pid: int, settings: Settings) -> dict[str, float]:
    load_pids = (os.getpid(), settings.upstream_pid)
    proxy_before = tree_cpu_seconds(pid)
    load_before = sum(cpu_seconds(p) for p in load_pids)
    cpus_before = cpu_jiffies()
    done, elapsed = await saturate(via, concurrency=settings.concurrency, seconds=settings.seconds)
    proxy_cpu = tree_cpu_seconds(pid) - proxy_before
    load_cpu = sum(cpu_seconds(p) for p in load_pids) - load_before
    busy = busy_fractions(cpus_before, cpu_jiffies())
    return {
        "concurrency": settings.concurrency,
        "requests": done,
        "requests_per_s": done / elapsed,
        "cpu_ms_per_request": proxy_cpu * 1000 / max(done, 1),
        "proxy_cpu_utilisation": proxy_cpu / elapsed,
        "load_side_cpu_utilisation": load_cpu / elapsed,
        # CPU 0 busy with anything but the proxy: other work on the machine competing
        # with it (then its requests/s is a lower bound), and CPU 1 as a whole.
        "cpu0_busy_by_others": max(0.0, busy.get(GATEWAY_CPU, 0.0) - proxy_cpu / elapsed),
        "cpu1_busy": busy.get(HELPER_CPU, 0.0),
    }
