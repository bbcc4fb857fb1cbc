"""Histograms aggregated by the package equal what the SDK would aggregate,
and reach readers in the temporality they prefer."""
import random

from opentelemetry.sdk.metrics import Histogram as HistogramInstrument
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from telemetry import catalog
from telemetry.histograms import HistogramTable, InjectingReaderMixin, ProducedHistograms
from telemetry.meter_provider import build_views

FAMILY = catalog.family("sublarr_http_request_duration_seconds")


class Reader(InjectingReaderMixin, InMemoryMetricReader):
    pass


def points(reader, name):
    data = reader.get_metrics_data()
    if data is None:  # nothing at all was collected
        return {}
    return {tuple(sorted(p.attributes.items())): p
            for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics if m.name == name
            for p in m.data.data_points}


def test_same_buckets_counts_and_sums_as_the_sdk():
    rng = random.Random(4)
    values = [rng.choice([0.01, 0.05, 1, 10, 0.0]) if rng.random() < 0.2 else rng.expovariate(2) for _ in range(5000)]
    keys = [("GET", f"/r{rng.randint(0, 3)}", "200") for _ in values]

    sdk_reader = InMemoryMetricReader()
    sdk_meter = MeterProvider(metric_readers=[sdk_reader], views=build_views()).get_meter(catalog.METER_NAME)
    sdk_histogram = sdk_meter.create_histogram(FAMILY.instrument_name, unit="s")
    ours = Reader()
    ours.produced = ProducedHistograms(InstrumentationScope(catalog.METER_NAME), Resource({}))
    MeterProvider(metric_readers=[ours])
    table = ours.produced.add(HistogramTable(FAMILY))
    for key, value in zip(keys, values):
        sdk_histogram.record(value, dict(zip(FAMILY.label_keys, key)))
        table.add(key, value)

    expected, actual = points(sdk_reader, FAMILY.name), points(ours, FAMILY.name)
    assert set(expected) == set(actual) and len(actual) == 4
    for labels, point in expected.items():
        mine = actual[labels]
        assert list(mine.bucket_counts) == list(point.bucket_counts)
        assert tuple(mine.explicit_bounds) == tuple(point.explicit_bounds)
        assert mine.count == point.count and abs(mine.sum - point.sum) < 1e-9
        assert (mine.min, mine.max) == (point.min, point.max)


def test_delta_readers_get_deltas():
    reader = Reader(preferred_temporality={HistogramInstrument: AggregationTemporality.DELTA})
    reader.produced = ProducedHistograms(InstrumentationScope(catalog.METER_NAME), Resource({}))
    MeterProvider(metric_readers=[reader])
    table = reader.produced.add(HistogramTable(FAMILY))
    key = ("GET", "/x", "200")
    for _ in range(3):
        table.add(key, 0.02)
    first = points(reader, FAMILY.name)
    table.add(key, 0.7)
    second = points(reader, FAMILY.name)
    third = points(reader, FAMILY.name)
    (p1,), (p2,) = first.values(), second.values()
    assert p1.count == 3 and p2.count == 1 and p2.sum == 0.7
    assert p2.bucket_counts[FAMILY.buckets.index(1)] == 1 and sum(p2.bucket_counts) == 1
    assert p2.start_time_unix_nano > p1.start_time_unix_nano
    assert third == {}, "no new values: no delta point"
