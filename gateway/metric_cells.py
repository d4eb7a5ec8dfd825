"""Counters and histograms cheap enough for the hot path, rendered by prometheus-client.

prometheus-client's own ``Counter`` and ``Histogram`` take a lock and look up a child per
label set on every update (several microseconds each on the reference machine, see
``bench/metrics_overhead``); the gateway updates its metrics on the event loop thread
only, so plain dictionaries of numbers do, and a collector turns them into metric
families at scrape time. Label values are the caller's business: only bounded sets (route templates,
configured provider names, error classes), never raw input.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

LabelValues = tuple[str, ...]

# Seconds: from a cached answer (1 ms) to a long model answer (two minutes).
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)


class CounterCells:
    """One monotonic count per label-value tuple."""

    __slots__ = ("_labels", "values")

    def __init__(self, labels: Sequence[str]) -> None:
        self._labels = tuple(labels)
        self.values: dict[LabelValues, float] = {}

    def inc(self, key: LabelValues, amount: float = 1.0) -> None:
        """Add ``amount`` to the count of ``key``."""
        values = self.values
        values[key] = values.get(key, 0.0) + amount

    def get(self, key: LabelValues) -> float:
        """The count of ``key`` (0 when never counted)."""
        return self.values.get(key, 0.0)

    def family(self, name: str, documentation: str) -> CounterMetricFamily:
        """The counts as a counter family (``name`` without ``_total``)."""
        family = CounterMetricFamily(name, documentation, labels=self._labels)
        for key, value in self.values.items():
            family.add_metric(key, value)
        return family


class _Series:
    __slots__ = ("buckets", "sum")

    def __init__(self, size: int) -> None:
        self.buckets = [0] * size  # per bucket, not cumulative; the last one is +Inf
        self.sum = 0.0


class HistogramCells:
    """A histogram per label-value tuple, with fixed bucket bounds."""

    __slots__ = ("_bounds", "_labels", "_names", "_series")

    def __init__(self, labels: Sequence[str], *, buckets: Sequence[float] = LATENCY_BUCKETS):
        self._labels = tuple(labels)
        self._bounds = tuple(buckets)
        self._names = (*(f"{b:g}" for b in self._bounds), "+Inf")
        self._series: dict[LabelValues, _Series] = {}

    def observe(self, key: LabelValues, value: float) -> None:
        """Count ``value`` in the histogram of ``key``."""
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(len(self._bounds) + 1)
        # bisect_left: a value equal to a bound belongs to that bucket (le = "less or equal").
        series.buckets[bisect.bisect_left(self._bounds, value)] += 1
        series.sum += value

    def count(self, key: LabelValues) -> int:
        """How many values ``key`` observed."""
        series = self._series.get(key)
        return sum(series.buckets) if series is not None else 0

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        """The histograms as a family (``_bucket``, ``_sum`` and ``_count`` samples)."""
        family = HistogramMetricFamily(name, documentation, labels=self._labels)
        for key, series in self._series.items():
            cumulative = 0
            buckets: list[tuple[str, float]] = []
            for bucket_name, count in zip(self._names, series.buckets, strict=True):
                cumulative += count
                buckets.append((bucket_name, float(cumulative)))
            family.add_metric(key, buckets, series.sum)
        return family
