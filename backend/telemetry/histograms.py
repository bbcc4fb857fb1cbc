"""Hot-path histograms and their counters aggregated here, handed to the readers as OTel data.

Why: one SDK ``Histogram.record`` costs about 20 us once attributes, view
matching, locks and exemplar sampling are paid, so even off the request path
the drain made HTTP and query metrics cost more CPU per request than a
hand-written prometheus_client version. The two hot-path histograms
(HTTP request and query durations) are therefore aggregated in plain Python
(a bisect and a few additions per value, at drain time) and handed to the
OTLP (and any other non-Prometheus) readers as standard OpenTelemetry
``Histogram`` metrics: each reader adds them (through the SDK's reader hook,
see :class:`telemetry._compat.CollectedBatchHook`) to the batch it just
collected, with the same data model, names and buckets as SDK-recorded
histograms, cumulative or delta temporality as the reader prefers, and
exemplars (the last sampled span per bucket) when tracing is on. The job
durations (:mod:`telemetry.jobs`) take the same path, for one way to
exemplars and one snapshot per histogram and counter.

The matching counters (``sublarr_http_requests_total``,
``sublarr_db_queries_total``, ``sublarr_jobs_total``) are the rows' counts, produced beside the
histograms as monotonic ``Sum`` metrics from the same snapshot, taken under
the table's lock: no reader can see a ``_total`` that disagrees with the
histogram's ``_count``. The Prometheus path renders the same snapshots
directly (:mod:`telemetry.direct`), without the OTel to prometheus_client
translation.
"""
from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import NamedTuple

from opentelemetry.sdk.metrics import Counter as CounterInstrument
from opentelemetry.sdk.metrics import Histogram as HistogramInstrument
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.metrics import Exemplar
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from ._compat import CollectedBatchHook, reader_temporality
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


class RowSnapshot(NamedTuple):
    """One label set at one instant: ``counts`` per bucket (not cumulative), ``count`` their sum."""
    key: tuple
    attributes: dict
    counts: list
    sum: float
    count: int
    min: float
    max: float
    exemplars: list


class HistogramTable:
    """Explicit-bucket histograms of one family, one row per label set.

    Bucket ``i`` counts values in ``(bounds[i-1], bounds[i]]``, as the SDK's
    explicit-bucket aggregation does. Rows are only added to; ``add`` runs
    under the owner's drain lock, ``snapshot`` under this table's lock.
    ``counter_family``, when given, is the counter whose value is each row's
    count (produced from the same snapshot).
    """

    def __init__(self, family: Family, label_keys: Iterable[str] | None = None,
                 counter_family: Family | None = None):
        self.family = family
        self.counter_family = counter_family
        self.bounds = tuple(family.buckets)
        self.label_keys = tuple(label_keys if label_keys is not None else family.label_keys)
        self.start_ns = time.time_ns()
        self._rows: dict[tuple, _Row] = {}
        self._attributes: dict[tuple, dict[str, str]] = {}
        self._lock = threading.Lock()

    def add(self, key: tuple, value: float, span_context=None, observed_ns: int | None = None) -> None:
        """One value; with ``span_context`` it becomes its bucket's exemplar, timed ``observed_ns``."""
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
                row.exemplars[index] = Exemplar({}, value, observed_ns or time.time_ns(),
                                                span_context.span_id, span_context.trace_id)

    def snapshot(self) -> list[RowSnapshot]:
        """Every row as it is now, in the order rows were first seen (one lock, one instant)."""
        with self._lock:
            return [RowSnapshot(key, self._attributes[key], list(row.counts), row.sum, row.count, row.min,
                                row.max, list(row.exemplars.values())) for key, row in self._rows.items()]


def preferred_histogram_temporality(reader) -> AggregationTemporality:
    """The temporality ``reader`` prefers for histograms."""
    return reader_temporality(reader, HistogramInstrument)


class ProducedHistograms:
    """The hot tables of one pipeline (histogram plus counter each), rendered for a reader at each collection."""

    def __init__(self, scope: InstrumentationScope, resource):
        self.scope = scope
        self.resource = resource
        self.tables: list[HistogramTable] = []
        self._drains: list[Callable[[], None]] = []
        self._previous: dict[int, dict] = {}  # reader id -> (family, key) -> (counts, sum, count, time)
        self._lock = threading.Lock()

    def add(self, table: HistogramTable, drain: Callable[[], None] | None = None) -> HistogramTable:
        """Register ``table``; ``drain`` (if any) moves pending notes into it before each snapshot."""
        self.tables.append(table)
        if drain is not None:
            self._drains.append(drain)
        return table

    def drain(self) -> None:
        for drain in self._drains:
            drain()

    def snapshots(self) -> list[tuple[HistogramTable, list[RowSnapshot]]]:
        """Drain, then one snapshot per table: what every reader and the Prometheus path render."""
        self.drain()
        return [(table, table.snapshot()) for table in self.tables]

    def metrics_for(self, reader) -> list[Metric]:
        histogram_temporality = reader_temporality(reader, HistogramInstrument)
        counter_temporality = reader_temporality(reader, CounterInstrument)
        now = time.time_ns()
        metrics = []
        with self._lock:
            previous = self._previous.setdefault(id(reader), {})
            for table, rows in self.snapshots():
                points, sums = [], []
                for row in rows:
                    attrs, counts, total, count = row.attributes, row.counts, row.sum, row.count
                    start = table.start_ns
                    before = None
                    if AggregationTemporality.DELTA in (histogram_temporality, counter_temporality):
                        key = (table.family.name, row.key)
                        before = previous.get(key)
                        previous[key] = (counts, total, count, now)
                    if table.counter_family is not None:
                        if counter_temporality is AggregationTemporality.DELTA and before is not None:
                            if count - before[2]:
                                sums.append(NumberDataPoint(attributes=attrs, start_time_unix_nano=before[3],
                                                            time_unix_nano=now, value=count - before[2]))
                        else:
                            sums.append(NumberDataPoint(attributes=attrs, start_time_unix_nano=start,
                                                        time_unix_nano=now, value=count))
                    if histogram_temporality is AggregationTemporality.DELTA and before is not None:
                        counts = [a - b for a, b in zip(counts, before[0])]
                        total, count, start = total - before[1], count - before[2], before[3]
                        if count == 0:
                            continue
                    points.append(HistogramDataPoint(
                        attributes=attrs, start_time_unix_nano=start, time_unix_nano=now, count=count,
                        sum=total, bucket_counts=counts, explicit_bounds=table.bounds, min=row.min, max=row.max,
                        exemplars=row.exemplars))
                if points:
                    metrics.append(Metric(name=table.family.instrument_name, description=table.family.description,
                                          unit=table.family.unit,
                                          data=Histogram(data_points=points,
                                                         aggregation_temporality=histogram_temporality)))
                if sums:
                    counter = table.counter_family
                    metrics.append(Metric(name=counter.instrument_name, description=counter.description,
                                          unit=counter.unit,
                                          data=Sum(data_points=sums, aggregation_temporality=counter_temporality,
                                                   is_monotonic=True)))
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


class InjectingReaderMixin(CollectedBatchHook):
    """Adds :class:`ProducedHistograms` to what a reader receives (even when the SDK collected nothing)."""

    produced: ProducedHistograms | None = None

    @property
    def wants_empty_batches(self) -> bool:
        return self.produced is not None

    def adjust_batch(self, metrics_data):
        return self.produced.inject(metrics_data, self) if self.produced is not None else metrics_data
