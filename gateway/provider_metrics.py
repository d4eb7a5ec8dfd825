"""Provider metrics: the gateway's ``ProviderObserver`` and its Prometheus families.

``ProviderMetrics`` is handed to the ``ProviderManager`` when the runtime builds it and
counts what the provider layer reports (``core.providers.observer``); ``ProviderCollector``
renders those counts at scrape time, with each provider's circuit breaker state read
from the manager then (a breaker turns half-open by itself, when its cooldown passes).
Labels are configured provider names, the model that answered, and error classes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.providers.observer import CallMode
from core.types import Usage
from gateway.metric_cells import CounterCells, HistogramCells

if TYPE_CHECKING:
    from gateway.runtime import Runtime

CIRCUIT_VALUES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}


class ProviderMetrics:
    """Counts calls, errors, retries, fallbacks, tokens and call latency per provider."""

    def __init__(self) -> None:
        self.calls = CounterCells(("provider", "mode"))
        self.errors = CounterCells(("provider", "error"))
        self.retries = CounterCells(("provider", "error"))
        self.fallbacks = CounterCells(("provider", "to", "error"))
        self.tokens = CounterCells(("provider", "model", "direction"))
        self.latency = HistogramCells(("provider", "mode"))

    def call_finished(
        self,
        *,
        provider: str,
        mode: CallMode,
        seconds: float,
        error: str | None,
        model: str | None = None,
        usage: Usage | None = None,
    ) -> None:
        """A call ended (see ``ProviderObserver``)."""
        self.calls.inc((provider, mode))
        self.latency.observe((provider, mode), seconds)
        if error is not None:
            self.errors.inc((provider, error))
        if usage is not None and model:
            self.tokens.inc((provider, model, "input"), usage.input_tokens)
            self.tokens.inc((provider, model, "output"), usage.output_tokens)

    def retried(self, *, provider: str, error: str) -> None:
        """Another attempt within a call."""
        self.retries.inc((provider, error))

    def fell_back(self, *, provider: str, to: str, error: str) -> None:
        """A request moved to the next provider."""
        self.fallbacks.inc((provider, to, error))

    def families(self) -> Iterator[Metric]:
        """The counts as metric families."""
        yield self.calls.family(
            "switchboard_provider_calls",
            "Calls to a provider (retries included), finished with an answer or an error",
        )
        yield self.errors.family(
            "switchboard_provider_errors",
            "Calls that ended in an error, by error class",
        )
        yield self.retries.family(
            "switchboard_provider_retries",
            "Further attempts within a call after a rate limit or overload",
        )
        yield self.fallbacks.family(
            "switchboard_provider_fallbacks",
            "Requests moved from a provider to the next one of [routing] fallbacks",
        )
        yield self.tokens.family(
            "switchboard_provider_tokens",
            "Tokens the provider reported, by the model that answered and direction",
        )
        yield self.latency.family(
            "switchboard_provider_call_duration_seconds",
            "Duration of provider calls (a stream: until its last event)",
        )


class ProviderCollector(Collector):
    """The runtime's provider metrics and every provider's circuit breaker state."""

    def __init__(self, runtime: Callable[[], Runtime | None]) -> None:
        self._runtime = runtime

    def collect(self) -> Iterator[Metric]:
        """The families, at scrape time."""
        runtime = self._runtime()
        if runtime is None:
            return
        yield from runtime.provider_metrics.families()
        circuit = GaugeMetricFamily(
            "switchboard_provider_circuit_state",
            "Circuit breaker of each provider: 0 closed, 1 half-open (probing), 2 open",
            labels=["provider"],
        )
        manager = runtime.manager
        for name in manager.names():
            circuit.add_metric([name], CIRCUIT_VALUES.get(manager.circuit_state(name), 2.0))
        yield circuit
