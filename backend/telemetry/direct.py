"""The Prometheus path: the hot families straight from their snapshots, the rest from the SDK.

Why: at 1,000 label sets, translating the HTTP histogram and counter from
OpenTelemetry data into prometheus_client families cost about twice the
SDK's collect. The hot tables (see :mod:`telemetry.histograms`) are
therefore rendered for Prometheus from one snapshot each, and only the SDK's
other metrics (a few dozen series: state gauges, domain counters) still go
through the OpenTelemetry Prometheus reader, which collects into a private
registry.

One scrape shows, in this fixed order: the hot counters, the SDK's families
in the SDK's order, the hot histograms (the order the bridge produced when
the hot families were injected into it, which the golden file pins).

:class:`DirectSource` is also a prometheus_client collector yielding the
same families as ``prometheus_client`` objects: registered in the public
registry, it keeps ``registry.get_sample_value`` and every encoder
prometheus_client has working (the generic path of
:mod:`telemetry.exposition`), and is the oracle the cached encoder of
:mod:`telemetry.fast_exposition` is proven against.
"""
from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterator
from itertools import accumulate
from typing import NamedTuple

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar

from .histograms import HistogramTable, ProducedHistograms, RowSnapshot

PROMETHEUS_UNITS = {"s": "seconds"}
"""Catalog (UCUM) unit of a hot histogram -> its Prometheus unit, as the OTel bridge maps it."""

_LEGACY_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_SURROGATE = re.compile("[\ud800-\udfff]")


def label_text(value) -> str:
    """A label value as exposed: a string, with lone surrogates (not encodable as UTF-8) as U+FFFD.

    Values should arrive valid already; this keeps one bad value from
    failing a whole scrape in either encoder.
    """
    text = value if type(value) is str else str(value)
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)


def bucket_exemplars(bounds: tuple, exemplars: list) -> dict[int, Exemplar]:
    """A row's OpenTelemetry exemplars as Prometheus ones, by bucket index.

    Labels ``trace_id`` and ``span_id`` in the W3C hex form (what Grafana's
    exemplar links and Tempo expect); the timestamp is the observation's, in
    seconds. The text format has no exemplars: only OpenMetrics writes them.
    """
    found = {}
    for exemplar in exemplars:
        if exemplar.trace_id is None or exemplar.span_id is None:
            continue
        found[bisect_left(bounds, exemplar.value)] = Exemplar(
            {"trace_id": format(exemplar.trace_id, "032x"), "span_id": format(exemplar.span_id, "016x")},
            exemplar.value, exemplar.time_unix_nano / 1e9)
    return found


class HotFamily:
    """How one hot table is named and labelled in the exposition."""

    def __init__(self, table: HistogramTable):
        histogram, counter = table.family, table.counter_family
        if histogram.unit not in PROMETHEUS_UNITS or not histogram.name.endswith("_" + PROMETHEUS_UNITS[histogram.unit]):
            raise ValueError(f"{histogram.name}: no Prometheus unit for {histogram.unit!r}")
        if counter is not None and (counter.unit or not counter.name.endswith("_total")):
            raise ValueError(f"{counter.name}: a hot counter is unitless and ends in _total")
        for name in (histogram.name, counter.name if counter else "", *table.label_keys):
            if name and not _LEGACY_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a legacy Prometheus name")
        self.table = table
        self.histogram = histogram
        self.counter = counter
        self.unit = PROMETHEUS_UNITS[histogram.unit]
        self.sorted_keys = tuple(sorted(table.label_keys))
        self.key_order = tuple(table.label_keys.index(k) for k in self.sorted_keys)
        self.le_texts = tuple(f"{bound}" for bound in table.bounds) + ("+Inf",)  # as the OTel bridge writes them

    def sorted_values(self, key: tuple) -> list[str]:
        return [label_text(key[i]) for i in self.key_order]

    # the generic representation ---------------------------------------
    def counter_family(self, rows: list[RowSnapshot]) -> CounterMetricFamily:
        family = CounterMetricFamily(self.counter.name, self.counter.description, labels=self.sorted_keys)
        for row in rows:
            family.add_metric(self.sorted_values(row.key), row.count)
        return family

    def histogram_family(self, rows: list[RowSnapshot]) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self.histogram.name, self.histogram.description, labels=self.sorted_keys,
                                       unit=self.unit)
        bounds = self.table.bounds
        for row in rows:
            buckets = list(zip(self.le_texts, accumulate(row.counts)))
            if row.exemplars:
                for index, exemplar in bucket_exemplars(bounds, row.exemplars).items():
                    buckets[index] = (*buckets[index], exemplar)
            family.add_metric(self.sorted_values(row.key), buckets, sum_value=row.sum)
        return family


class Gathered(NamedTuple):
    """One scrape's data: hot snapshots (family, rows) and the SDK's other families."""
    hot: list[tuple[HotFamily, list[RowSnapshot]]]
    sdk_families: list


class DirectSource(Collector):
    """The data of one scrape: hot snapshots plus the SDK families of ``sdk_registry``."""

    def __init__(self, produced: ProducedHistograms, sdk_registry: CollectorRegistry):
        self.produced = produced
        self.sdk_registry = sdk_registry
        self._families: dict[int, HotFamily] = {}

    def hot_family(self, table: HistogramTable) -> HotFamily:
        family = self._families.get(id(table))
        if family is None:
            family = self._families[id(table)] = HotFamily(table)
        return family

    def describe(self) -> list:
        """Nothing: registering must not collect (the SDK's callbacks would run at start-up)."""
        return []

    def gather(self) -> Gathered:
        hot = [(self.hot_family(table), rows) for table, rows in self.produced.snapshots() if rows]
        return Gathered(hot, list(self.sdk_registry.collect()))

    def collect(self) -> Iterator:
        """The generic path: every family as a prometheus_client object, in the scrape's order."""
        gathered = self.gather()
        for family, rows in gathered.hot:
            if family.counter is not None:
                yield family.counter_family(rows)
        yield from gathered.sdk_families
        for family, rows in gathered.hot:
            yield family.histogram_family(rows)
