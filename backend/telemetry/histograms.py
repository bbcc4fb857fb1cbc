"""Hot-path histograms aggregated here, handed to the readers as OTel data.

Why: one SDK ``Histogram.record`` costs about 20 us once attributes, view
matching, locks and exemplar sampling are paid, so even off the request path
the drain made HTTP and query metrics cost more CPU per request than a
hand-written prometheus_client version. The two hot-path histograms
(HTTP request and query durations) are therefore aggregated in plain Python
(a bisect and a few additions per value, at drain time) and handed to every
reader as standard OpenTelemetry ``Histogram`` metrics: each reader's
``_receive_metrics`` (the SDK's documented extension point for readers) adds
them to the batch it just collected. Both paths, the Prometheus bridge and
OTLP, therefore get the same data model, names and buckets as SDK-recorded
histograms, with cumulative or delta temporality as the reader prefers, and
exemplars (the last sampled span per bucket) when tracing is on.
"""
from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import replace

from opentelemetry.sdk.metrics import Histogram as HistogramInstrument
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.metrics import Exemplar
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from .catalog import Family


class _Row:
    __slots__ = ("counts", "sum", "count", "min", "max", "exemplars")

    def __init__(self, buckets: int):
        self.counts = [0] * buckets
        self.sum = 0.0
        self.count = 0
        self.min = float("inf")
        self.max = float("-inf")
        self.exemplars: dict[int, Exemplar] = {}


class HistogramTable:
    """Explicit-bucket histograms of one family, one row per label set.

    Bucket ``i`` counts values in ``(bounds[i-1], bounds[i]]``, as the SDK's
    explicit-bucket aggregation does. Rows are only added to; ``add`` runs
    under the owner's drain lock, ``snapshot`` under this table's lock.
    """

    def __init__(self, family: Family, label_keys: Iterable[str] | None = None):
        self.family = family
        self.bounds = tuple(family.buckets)
        self.label_keys = tuple(label_keys if label_keys is not None else family.label_keys)
        self.start_ns = time.time_ns()
        self._rows: dict[tuple, _Row] = {}
        self._attributes: dict[tuple, dict[str, str]] = {}
        self._lock = threading.Lock()

    def add(self, key: tuple, value: float, span_context=None) -> None:
        index = bisect_left(self.bounds, value)
        with self._lock:
            row = self._rows.get(key)
            if row is None:
                row = self._rows[key] = _Row(len(self.bounds) + 1)
                self._attributes[key] = dict(zip(self.label_keys, key))
            row.counts[index] += 1
            row.sum += value
            row.count += 1
            if value < row.min:
                row.min = value
            if value > row.max:
                row.max = value
            if span_context is not None:
                row.exemplars[index] = Exemplar({}, value, time.time_ns(), span_context.span_id,
                                                span_context.trace_id)

    def snapshot(self) -> list[tuple[dict, list[int], float, int, float, float, list[Exemplar]]]:
        with self._lock:
            return [(self._attributes[key], list(row.counts), row.sum, row.count, row.min, row.max,
                     list(row.exemplars.values())) for key, row in self._rows.items()]


def _histogram_temporality(reader) -> AggregationTemporality:
    """The temporality ``reader`` prefers for histograms (the SDK keys it by its instrument classes)."""
    for cls, temporality in getattr(reader, "_instrument_class_temporality", {}).items():
        if issubclass(cls, HistogramInstrument):
            return temporality
    return AggregationTemporality.CUMULATIVE


class ProducedHistograms:
    """The tables of one pipeline, rendered for a reader at each collection."""

    def __init__(self, scope: InstrumentationScope, resource):
        self.scope = scope
        self.resource = resource
        self.tables: list[HistogramTable] = []
        self._previous: dict[int, dict] = {}  # reader id -> (family, attrs) -> (counts, sum, count, time)
        self._lock = threading.Lock()

    def add(self, table: HistogramTable) -> HistogramTable:
        self.tables.append(table)
        return table

    def metrics_for(self, reader) -> list[Metric]:
        temporality = _histogram_temporality(reader)
        now = time.time_ns()
        metrics = []
        with self._lock:
            previous = self._previous.setdefault(id(reader), {})
            for table in self.tables:
                points = []
                for attrs, counts, total, count, low, high, exemplars in table.snapshot():
                    start = table.start_ns
                    if temporality is AggregationTemporality.DELTA:
                        key = (table.family.name, tuple(attrs.values()))
                        before = previous.get(key)
                        previous[key] = (counts, total, count, now)
                        if before is not None:
                            counts = [a - b for a, b in zip(counts, before[0])]
                            total, count, start = total - before[1], count - before[2], before[3]
                            if count == 0:
                                continue
                    points.append(HistogramDataPoint(
                        attributes=attrs, start_time_unix_nano=start, time_unix_nano=now, count=count,
                        sum=total, bucket_counts=counts, explicit_bounds=table.bounds, min=low, max=high,
                        exemplars=exemplars))
                if points:
                    metrics.append(Metric(name=table.family.instrument_name, description=table.family.description,
                                          unit=table.family.unit,
                                          data=Histogram(data_points=points, aggregation_temporality=temporality)))
        return metrics

    def inject(self, metrics_data: MetricsData | None, reader) -> MetricsData | None:
        """``metrics_data`` plus this pipeline's histograms, under its own scope."""
        extra = self.metrics_for(reader)
        if not extra:
            return metrics_data
        if metrics_data is None or not metrics_data.resource_metrics:
            return MetricsData(resource_metrics=[ResourceMetrics(
                resource=self.resource, scope_metrics=[ScopeMetrics(self.scope, extra, "")], schema_url="")])
        first, *rest = metrics_data.resource_metrics
        scopes = list(first.scope_metrics)
        for index, scope_metrics in enumerate(scopes):
            if scope_metrics.scope.name == self.scope.name:
                scopes[index] = replace(scope_metrics, metrics=list(scope_metrics.metrics) + extra)
                break
        else:
            scopes.append(ScopeMetrics(self.scope, extra, ""))
        return replace(metrics_data, resource_metrics=[replace(first, scope_metrics=scopes), *rest])


class InjectingReaderMixin:
    """Adds :class:`ProducedHistograms` to what a reader receives.

    The SDK skips ``_receive_metrics`` when its own collection is empty, so
    the collect callback it installs is wrapped to turn that ``None`` into an
    empty batch that the produced histograms can still fill.
    """

    produced: ProducedHistograms | None = None

    @property
    def _collect(self):
        inner = self.__dict__.get("_sublarr_sdk_collect")
        if inner is None:
            return None

        def collect(reader, timeout_millis: float = 10_000):
            data = inner(reader, timeout_millis=timeout_millis)
            return MetricsData(resource_metrics=[]) if data is None and self.produced is not None else data
        return collect

    @_collect.setter
    def _collect(self, value) -> None:
        self.__dict__["_sublarr_sdk_collect"] = value

    def _receive_metrics(self, metrics_data, timeout_millis: float = 10_000, **kwargs) -> None:
        if self.produced is not None:
            metrics_data = self.produced.inject(metrics_data, self)
        if metrics_data is None or not metrics_data.resource_metrics:
            return  # nothing at all this time: send nothing
        super()._receive_metrics(metrics_data, timeout_millis=timeout_millis, **kwargs)
