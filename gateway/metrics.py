"""``GET /metrics``: Prometheus text format, read from the running gateway at scrape time.

A collector per app (no process-global registry, so tests and several apps in one process
never share counters). So far: the state of every chat platform channel, so a channel that
keeps failing shows on a dashboard and can page someone, and the outbox backlog.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from gateway.runtime import Runtime

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ChannelCollector(Collector):
    """Channel connection state and delivery counters, from ``Runtime.channel_status``."""

    def __init__(self, runtime: Callable[[], Runtime | None]) -> None:
        self._runtime = runtime

    def collect(self) -> Iterator[Metric]:
        runtime = self._runtime()
        statuses = runtime.channel_status() if runtime is not None else {}
        connected = GaugeMetricFamily(
            "switchboard_channel_connected",
            "1 while the chat platform connection works, else 0",
            labels=["channel"],
        )
        failures = GaugeMetricFamily(
            "switchboard_channel_consecutive_failures",
            "Connection failures in a row (0 once it works again)",
            labels=["channel"],
        )
        sent = CounterMetricFamily(
            "switchboard_channel_messages_sent",
            "Outbox rows delivered to the platform since start",
            labels=["channel"],
        )
        for name, status in statuses.items():
            connected.add_metric([name], 1.0 if status.get("connected") else 0.0)
            failures.add_metric([name], float(status.get("consecutive_failures", 0)))
            sent.add_metric([name], float(status.get("sent", 0)))
        yield connected
        yield failures
        yield sent


def build_registry(runtime: Callable[[], Runtime | None]) -> CollectorRegistry:
    """A registry with the gateway's collectors."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ChannelCollector(runtime))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The registry in Prometheus text format."""
    return generate_latest(registry)
