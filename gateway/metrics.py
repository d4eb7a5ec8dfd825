"""``GET /metrics``: Prometheus text format, read from the running gateway at scrape time.

A registry per app (no process-global registry, so tests and several apps in one process
never share counters), fed by:

* ``ChannelCollector``: every chat platform channel's connection state and message
  counters, so a channel that keeps failing shows on a dashboard and can page someone;
* ``gateway.http_metrics``: requests and latency per route template;
* ``gateway.provider_metrics``: provider calls, errors, retries, fallbacks, tokens,
  latency and circuit breaker state;
* ``StoreGauges``: pending approvals and the outbox backlog, counted in the database
  when Prometheus scrapes (``GatewayMetrics.render`` refreshes them first, since a
  collector's ``collect`` cannot await).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.errors import StorageError
from core.storage.action_repo import ActionRepository
from core.storage.outbox_repo import OutboxRepository
from core.types import ApprovalStatus
from gateway.http_metrics import HttpMetrics
from gateway.provider_metrics import ProviderCollector

if TYPE_CHECKING:
    from gateway.runtime import Runtime

log = logging.getLogger("switchboard.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ChannelCollector(Collector):
    """Channel connection state and delivery counters, from ``Runtime.channel_status``."""

    def __init__(self, runtime: Callable[[], Runtime | None]) -> None:
        self._runtime = runtime
        self._snapshot: dict[str, dict[str, Any]] | None = None

    def snapshot(self) -> None:
        """Read the counters now, for the next ``collect``.

        ``GatewayMetrics.render`` takes it before counting the outbox in the database: a
        row is marked sent before its counter moves, so a scrape never shows a message as
        sent that its backlog still holds.
        """
        runtime = self._runtime()
        self._snapshot = runtime.channel_status() if runtime is not None else {}

    def collect(self) -> Iterator[Metric]:
        statuses, self._snapshot = self._snapshot, None
        if statuses is None:
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
        received = CounterMetricFamily(
            "switchboard_channel_messages_received",
            "Messages accepted from the platform since start (redeliveries not counted)",
            labels=["channel"],
        )
        sent = CounterMetricFamily(
            "switchboard_channel_messages_sent",
            "Outbox rows delivered to the platform since start",
            labels=["channel"],
        )
        failed = CounterMetricFamily(
            "switchboard_channel_messages_failed",
            "Outbox rows given up on (refused by the platform, or too many attempts)",
            labels=["channel"],
        )
        for name, status in statuses.items():
            connected.add_metric([name], 1.0 if status.get("connected") else 0.0)
            failures.add_metric([name], float(status.get("consecutive_failures", 0)))
            received.add_metric([name], float(status.get("received", 0)))
            sent.add_metric([name], float(status.get("sent", 0)))
            failed.add_metric([name], float(status.get("failed", 0)))
        yield connected
        yield failures
        yield received
        yield sent
        yield failed


class StoreGauges(Collector):
    """Pending approvals and undelivered outbox rows, as counted at the last ``refresh``."""

    def __init__(self, runtime: Callable[[], Runtime | None]) -> None:
        self._runtime = runtime
        self._pending_approvals: int | None = None
        self._backlog: dict[str, int] = {}

    async def refresh(self) -> None:
        """Count in the database (two indexed COUNTs and a loose index scan)."""
        runtime = self._runtime()
        self._pending_approvals = None
        if runtime is None:
            return
        try:
            pending = await ActionRepository(runtime.db).count_approvals(ApprovalStatus.PENDING)
            backlog = await OutboxRepository(runtime.db).backlog_by_platform()
        except StorageError as exc:  # the scrape still answers; the gauges are left out
            log.warning("event=metrics_store_unavailable problem=%r", exc.message)
            return
        channels = dict.fromkeys(runtime.channel_status(), 0)
        self._pending_approvals, self._backlog = pending, channels | backlog

    def collect(self) -> Iterator[Metric]:
        """The gauges (none when the database could not be read)."""
        if self._pending_approvals is None:
            return
        yield GaugeMetricFamily(
            "switchboard_approvals_pending",
            "Approvals waiting for a human decision",
            value=float(self._pending_approvals),
        )
        backlog = GaugeMetricFamily(
            "switchboard_outbox_backlog",
            "Outbox rows not yet delivered to the platform (retries waiting included)",
            labels=["channel"],
        )
        for name, count in sorted(self._backlog.items()):
            backlog.add_metric([name], float(count))
        yield backlog


class GatewayMetrics:
    """The app's registry with every collector; ``http`` feeds the HTTP middleware."""

    def __init__(self, runtime: Callable[[], Runtime | None]) -> None:
        self.http = HttpMetrics()
        self._channels = ChannelCollector(runtime)
        self._store = StoreGauges(runtime)
        self.registry = CollectorRegistry(auto_describe=False)
        for collector in (self._channels, ProviderCollector(runtime), self._store):
            self.registry.register(collector)
        self.registry.register(self.http)

    async def render(self) -> bytes:
        """Every metric in Prometheus text format, the database gauges counted just now."""
        self._channels.snapshot()
        await self._store.refresh()
        return generate_latest(self.registry)
