"""Exponential histograms on the OTLP paths, so Prometheus 3 stores native histograms.

Opt-in (``SUBLARR_METRICS_NATIVE_HISTOGRAMS=also|only``): the request, query
and job durations are additionally (``also``) or instead of the classic
buckets (``only``) sent to OTLP readers as OpenTelemetry exponential
histograms, under the same names. Prometheus 3's OTLP receiver stores an
exponential histogram as one native-histogram series named after the family
(``sublarr_http_request_duration_seconds``, no ``_bucket``), next to the
classic ``_bucket``/``_sum``/``_count`` series, so both can coexist; queries
read it as ``histogram_quantile(0.95, sum(rate(<family>[5m])))``.

Why a fixed scale: the SDK's exponential aggregation re-scales as values
arrive, which two processes summed in PromQL do not care about but its cost
per record (~20 us, see telemetry.histograms) does. Here values are counted
at a fixed scale of 3 (buckets grow by 2^(1/8), < 4.5 % relative error, the
resolution Prometheus itself uses by default) in a sparse map filled at drain
time, and rendered only when an OTLP reader collects. The Prometheus pull
path cannot carry native histograms in the text format and keeps the classic
ones in every mode. Exemplars stay on the classic histograms.

Not for the collector path: the collector's Prometheus exporter (v0.165)
renders an exponential histogram as a classic one with only a ``+Inf``
bucket, and with ``also`` it collides with the classic histogram of the same
name ("error gathering metrics"). Push straight into Prometheus 3.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Buckets,
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Histogram,
    Metric,
)

from .catalog import Family
from .histograms import HistogramTable, ProducedHistograms, preferred_histogram_temporality

MODES = ("off", "also", "only")
SCALE = 3
NATIVE_FAMILIES = ("sublarr_http_request_duration_seconds", "sublarr_db_query_duration_seconds",
                   "sublarr_job_duration_seconds")


def bucket_index(value: float, scale: int = SCALE) -> int:
    """Index ``i`` of the bucket ``(base**i, base**(i+1)]``, ``base = 2**(2**-scale)``.

    Exact at powers of two (the OpenTelemetry mapping's boundary rule);
    elsewhere a logarithm, which the specification allows to be off by one
    right at a bound.
    """
    mantissa, exponent = math.frexp(value)
    if mantissa == 0.5:  # value == 2**(exponent-1): the upper bound of its bucket
        return ((exponent - 1) << scale) - 1
    return math.ceil(math.log2(value) * (1 << scale)) - 1


class _Row:
    __slots__ = ("buckets", "zero", "sum", "count", "min", "max")

    def __init__(self):
        self.buckets: dict[int, int] = {}
        self.zero = 0
        self.sum = 0.0
        self.count = 0
        self.min = math.inf
        self.max = -math.inf


class ExponentialTable:
    """Exponential histograms of one family (non-negative values), one row per label set."""

    def __init__(self, family: Family, label_keys: Iterable[str] | None = None, scale: int = SCALE):
        self.family = family
        self.label_keys = tuple(label_keys if label_keys is not None else family.label_keys)
        self.scale = scale
        self.start_ns = time.time_ns()
        self._rows: dict[tuple, _Row] = {}
        self._attributes: dict[tuple, dict[str, str]] = {}
        self._lock = threading.Lock()

    def add(self, key: tuple, value: float, span_context=None) -> None:
        index = bucket_index(value, self.scale) if value > 0 else None
        with self._lock:
            row = self._rows.get(key)
            if row is None:
                row = self._rows[key] = _Row()
                self._attributes[key] = dict(zip(self.label_keys, key))
            if index is None:
                row.zero += 1
            else:
                row.buckets[index] = row.buckets.get(index, 0) + 1
            row.sum += value
            row.count += 1
            row.min = min(row.min, value)
            row.max = max(row.max, value)

    def snapshot(self) -> list[tuple[dict, dict[int, int], int, float, int, float, float]]:
        with self._lock:
            return [(self._attributes[key], dict(row.buckets), row.zero, row.sum, row.count, row.min, row.max)
                    for key, row in self._rows.items()]


def _dense(buckets: dict[int, int]) -> Buckets:
    if not buckets:
        return Buckets(0, [])
    low, high = min(buckets), max(buckets)
    return Buckets(low, [buckets.get(i, 0) for i in range(low, high + 1)])


class NativeHistograms(ProducedHistograms):
    """:class:`ProducedHistograms` that also gives OTLP readers exponential histograms.

    ``wants(reader)`` picks the readers that get them (the OTLP ones). In
    ``only`` mode those readers get no classic buckets for the native
    families, neither the produced ones nor any the SDK recorded.
    """

    def __init__(self, scope, resource, mode: str, wants: Callable[[object], bool]):
        if mode not in MODES[1:]:
            raise ValueError(f"native histogram mode {mode!r}: expected one of {MODES[1:]}")
        super().__init__(scope, resource)
        self.mode = mode
        self._wants = wants
        self.exponential: list[ExponentialTable] = []
        self._exp_previous: dict[int, dict] = {}

    def track(self, family: Family, label_keys: Iterable[str] | None = None) -> ExponentialTable:
        """An exponential table for ``family``, rendered with this pipeline's histograms."""
        table = ExponentialTable(family, label_keys)
        self.exponential.append(table)
        return table

    def add(self, table: HistogramTable, drain: Callable[[], None] | None = None) -> HistogramTable:
        """Register a classic hot-path table and feed every value it gets to an exponential twin."""
        super().add(table, drain)
        if table.family.name in NATIVE_FAMILIES:
            twin, classic_add = self.track(table.family, table.label_keys), table.add

            def add_both(key, value, span_context=None, observed_ns=None):
                classic_add(key, value, span_context, observed_ns)
                twin.add(key, value)
            table.add = add_both  # the drain looks `add` up on the instance at each run
        return table

    def metrics_for(self, reader) -> list[Metric]:
        metrics = super().metrics_for(reader)
        if not self._wants(reader):
            return metrics
        if self.mode == "only":
            metrics = [m for m in metrics if not self._native_name(m.name)]
        return metrics + self._exponential_metrics(reader)

    def inject(self, metrics_data, reader):
        if self.mode == "only" and metrics_data is not None and self._wants(reader):
            metrics_data = self._without_classic(metrics_data)
        return super().inject(metrics_data, reader)

    # -- internals -------------------------------------------------------------
    def _native_name(self, instrument_name: str) -> bool:
        return any(t.family.instrument_name == instrument_name for t in self.exponential)

    def _without_classic(self, metrics_data):
        """The batch without SDK-recorded classic histograms of the native families."""
        resource_metrics = []
        for rm in metrics_data.resource_metrics:
            scopes = [replace(sm, metrics=[m for m in sm.metrics
                                           if not (isinstance(m.data, Histogram) and self._native_name(m.name))])
                      for sm in rm.scope_metrics]
            resource_metrics.append(replace(rm, scope_metrics=scopes))
        return replace(metrics_data, resource_metrics=resource_metrics)

    def _exponential_metrics(self, reader) -> list[Metric]:
        temporality = preferred_histogram_temporality(reader)
        now = time.time_ns()
        metrics = []
        with self._lock:
            previous = self._exp_previous.setdefault(id(reader), {})
            for table in self.exponential:
                points = []
                for attrs, buckets, zero, total, count, low, high in table.snapshot():
                    start = table.start_ns
                    if temporality is AggregationTemporality.DELTA:
                        key = (table.family.name, tuple(attrs.values()))
                        before = previous.get(key)
                        previous[key] = (buckets, zero, total, count, now)
                        if before is not None:
                            buckets = {i: n - before[0].get(i, 0) for i, n in buckets.items()
                                       if n != before[0].get(i, 0)}
                            zero, total, count, start = zero - before[1], total - before[2], count - before[3], before[4]
                            if count == 0:
                                continue
                    points.append(ExponentialHistogramDataPoint(
                        attributes=attrs, start_time_unix_nano=start, time_unix_nano=now, count=count, sum=total,
                        scale=table.scale, zero_count=zero, positive=_dense(buckets), negative=Buckets(0, []),
                        flags=0, min=low, max=high))
                if points:
                    metrics.append(Metric(name=table.family.instrument_name, description=table.family.description,
                                          unit=table.family.unit,
                                          data=ExponentialHistogram(data_points=points,
                                                                    aggregation_temporality=temporality)))
        return metrics


def build_produced(mode: str, scope, resource, wants: Callable[[object], bool]) -> ProducedHistograms:
    """The pipeline's histogram producer: plain when ``mode`` is ``off``."""
    if mode == "off":
        return ProducedHistograms(scope, resource)
    return NativeHistograms(scope, resource, mode, wants)
