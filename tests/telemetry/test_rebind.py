"""Rebindable providers: instrumentations get them once, and they follow every bind."""
from __future__ import annotations

from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from telemetry.rebind import RebindableMeterProvider, RebindableTracerProvider


def span_sink():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_tracers_taken_before_a_bind_start_spans_in_the_provider_bound_now():
    proxy = RebindableTracerProvider()
    tracer = proxy.get_tracer("instrumentation.x", "1.0")  # as an instrumentor does, once
    with tracer.start_as_current_span("unbound") as span:
        assert not span.is_recording()

    first, first_spans = span_sink()
    second, second_spans = span_sink()
    proxy.bind(first)
    tracer.start_span("one").end()
    proxy.bind(second)
    with tracer.start_as_current_span("two"):
        pass
    proxy.bind(None)
    tracer.start_span("after unbind").end()

    assert [s.name for s in first_spans.get_finished_spans()] == ["one"]
    assert [s.name for s in second_spans.get_finished_spans()] == ["two"]
    (two,) = second_spans.get_finished_spans()
    assert (two.instrumentation_scope.name, two.instrumentation_scope.version) == ("instrumentation.x", "1.0")


def points(reader):
    found = {}
    data = reader.get_metrics_data()
    for resource_metrics in (data.resource_metrics if data else []):
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                found[metric.name] = [p.value if hasattr(p, "value") else p.count for p in metric.data.data_points]
    return found


def test_instruments_created_before_a_bind_record_into_the_provider_bound_now():
    proxy = RebindableMeterProvider()
    meter = proxy.get_meter("instrumentation.y")
    counter = meter.create_up_down_counter("connections")
    histogram = meter.create_histogram("duration", unit="s")
    meter.create_observable_gauge("ready", callbacks=[lambda options: [Observation(1)]])
    counter.add(5)  # unbound: a no-op, nowhere to go

    first_reader, second_reader = InMemoryMetricReader(), InMemoryMetricReader()
    first, second = MeterProvider([first_reader]), MeterProvider([second_reader])
    proxy.bind(first)
    counter.add(2)
    histogram.record(0.5)
    proxy.bind(second)
    counter.add(3)

    assert points(first_reader) == {"connections": [2], "duration": [1], "ready": [1]}
    assert points(second_reader) == {"connections": [3], "ready": [1]}
    first.shutdown()
    second.shutdown()
