"""What one phase of load measured: rate, latency, CPU, and whether every message got one reply."""

from __future__ import annotations

from typing import Any

from bench.pipeline.loadgen import ReplyWatcher
from bench.provider_overhead.run import percentiles

TARGET_PER_S = 300  # issue #6
TARGET_P99_MS = 20.0
MAX_LISTED = 10


def _ms(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        return {k: round(values[0] * 1000, 2) if values else 0.0 for k in ("p50", "p95", "p99")}
    found = percentiles(values) | {"max": max(values) * 1000}
    return {k: round(v, 2) for k, v in found.items()}


def correctness(watcher: ReplyWatcher, phase: str) -> dict[str, Any]:
    """Whether every message sent in ``phase`` got exactly one reply, the echo of its text.

    ``rejected``: refused by the webhook; ``missing``: accepted, no reply even after the
    drain; ``duplicated``: more than one reply message (``extra_replies`` in all);
    ``wrong_text``: the (first) reply is not the echo of what was sent. ``missing_ids``: the
    platform message ids (``chat:message``, as the inbox stores them) of the first missing.
    """
    sent = [m for m in watcher.sent.values() if m.phase == phase]
    accepted = [m for m in sent if m.status == 200]
    answered = [watcher.answers[m.key] for m in accepted if m.key in watcher.answers]
    return {
        "sent": len(sent),
        "rejected": len(sent) - len(accepted),
        "answered": len(answered),
        "missing": len(accepted) - len(answered),
        "missing_ids": [f"{m.key[0]}:{m.key[1]}" for m in accepted if m.key not in watcher.answers][
            :MAX_LISTED
        ],
        "duplicated": sum(1 for answers in answered if len(answers) > 1),
        "extra_replies": sum(len(answers) - 1 for answers in answered),
        "wrong_text": sum(
            1
            for m in accepted
            if m.key in watcher.answers and m.text not in watcher.answers[m.key][0].text
        ),
    }


def phase_summary(
    watcher: ReplyWatcher,
    phase: str,
    *,
    window: tuple[float, float],
    cpu_s: float,
    idle_cpu: float = 0.0,
) -> dict[str, Any]:
    """``correctness`` and the figures of the messages sent in ``phase`` during ``window``.

    ``messages_per_s`` counts the messages (of any phase) whose first reply arrived within
    ``window`` (the time the load was applied); ``cpu_ms_per_message`` divides the
    replicas' CPU time ``cpu_s`` by that count, and ``..._above_idle`` first takes off what
    the replicas burn when idle (``idle_cpu``, CPU-s per s: timers, sweepers, heartbeats).
    Latencies are those of the messages sent in ``phase``: first reply minus POST sent (also
    by the replica that took the POST: with several, one of them delivers every reply).
    """
    start, end = window
    sent = [m for m in watcher.sent.values() if m.phase == phase]
    accepted = [m for m in sent if m.status == 200]
    answered = [m for m in accepted if m.key in watcher.answers]
    latency = {m.key: watcher.answers[m.key][0].at - m.sent_at for m in answered}
    by_replica = {
        str(replica): _ms([latency[m.key] for m in answered if m.replica == replica])
        for replica in sorted({m.replica for m in answered})
    }
    in_window = sum(1 for a in watcher.answers.values() if start <= a[0].at <= end)
    counted = max(in_window, 1)
    busy_cpu_s = max(0.0, cpu_s - idle_cpu * (end - start))
    return correctness(watcher, phase) | {
        "seconds": round(end - start, 2),
        "sent_per_s": round(len(sent) / (end - start), 1),
        "messages_per_s": round(in_window / (end - start), 1),
        "latency_ms": _ms(list(latency.values())),
        "latency_ms_by_replica": by_replica,  # which replica the webhook POST went to
        "webhook_ack_ms": _ms([m.ack_s for m in accepted]),
        "send_lag_ms": _ms([m.sent_at - m.due_at for m in sent]),
        "cpu_ms_per_message": round(cpu_s * 1000 / counted, 2),
        "cpu_ms_per_message_above_idle": round(busy_cpu_s * 1000 / counted, 2),
        "cpu_utilisation": round(cpu_s / (end - start), 2),
    }


def table(results: list[dict[str, Any]]) -> str:
    """The figures of every combination, one line each, against the targets of issue #6."""
    lines = [
        "| backend | replicas | saturation msg/s (in flight) | CPU-ms/msg | fixed rate msg/s "
        "| p50 ms | p99 ms | CPU-ms/msg | missing | duplicated | not ours |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for combo in results:
        sat, fixed = combo["saturation"], combo["fixed_rate"]
        phases = (combo["ramp"], sat, fixed)
        missing = sum(phase["missing"] for phase in phases)
        duplicated = sum(phase["duplicated"] for phase in phases)
        lines.append(
            f"| {combo['backend']} | {combo['replicas']} "
            f"| {sat['messages_per_s']:.1f} ({combo['in_flight']}) "
            f"| {sat['cpu_ms_per_message']:.1f} "
            f"| {fixed['rate']:g} | {fixed['latency_ms']['p50']:.1f} "
            f"| {fixed['latency_ms']['p99']:.1f} | {fixed['cpu_ms_per_message']:.1f} "
            f"| {missing} | {duplicated} "
            f"| {sat['other_busy_cores']:.1f} / {fixed['other_busy_cores']:.1f} |"
        )
    lines.append(
        "\nmissing, duplicated: over all messages (ramp included); not ours: busy cores "
        "outside the replicas, PostgreSQL, the fake and the load generator (other programs, "
        "kernel threads), saturation / fixed"
    )
    lines.append(f"target (issue #6): >= {TARGET_PER_S} msg/s, p99 added <= {TARGET_P99_MS} ms")
    return "\n".join(lines)
