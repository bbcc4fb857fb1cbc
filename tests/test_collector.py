"""The real otelcol-sublarr (scripts/build-collector) with otel-collector/config.yaml.

What these tests establish for collector v0.165.0:

* An OTLP/HTTP push from the Python SDK comes out of the collector's Prometheus
  exporter with the same family names, TYPE and HELP lines, label keys, `le`
  bounds and values as the same instruments rendered in-process by
  opentelemetry-exporter-prometheus, provided the instrument names already
  carry their Prometheus suffixes (`_total` on counters, the unit word on
  unit-bearing instruments), which is the project's naming convention.
* The collector adds exactly `job` (service.name) and `instance`
  (service.instance.id) to every series, plus a `target_info` family holding
  the other resource attributes.
* `add_metric_suffixes: false` alone is ignored in this release;
  `translation_strategy: UnderscoreEscapingWithoutSuffixes` is what keeps
  names unchanged, and `without_scope_info: true` what drops otel_scope_*.
"""
from __future__ import annotations

import os
import socket
import urllib.request
import uuid

import pytest
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from harness.collector import VENDOR_CONFIG, OtelCollector, validate
from harness.support import wait_for

pytestmark = pytest.mark.e2e

# Integral bounds as ints: Python renders 1 as le="1" (like Go) but 1.0 as le="1.0".
BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
FLOAT_BUCKETS = (0.5, 1.0, 2.0)
ADDED_BY_COLLECTOR = {"job", "instance"}

# Named as the Prometheus series (the convention): must arrive unchanged.
CONFORMING = {
    "sublarr_test_requests_total", "sublarr_test_duration_seconds", "sublarr_test_size_bytes",
    "sublarr_test_cpu_percent", "sublarr_test_queue_depth", "sublarr_test_cache_hit_ratio",
    "sublarr_test_active_requests",
}
# Names lacking the suffix their kind/unit implies (what the convention forbids).
NONCONFORMING = {"sublarr_test_events", "sublarr_test_read", "sublarr_test_load",
                 "sublarr_test_latency"}
# What the Python bridge (and the collector's default strategy) would call them.
SUFFIXED = {"sublarr_test_events_total", "sublarr_test_read_bytes_total",
            "sublarr_test_load_ratio", "sublarr_test_latency_milliseconds"}
FLOAT_BOUNDS = "sublarr_test_float_bounds_seconds"


# -- the instruments, recorded identically on both paths ------------------------
def _views() -> list[View]:
    return [
        View(instrument_name="sublarr_test_duration_seconds",
             aggregation=ExplicitBucketHistogramAggregation(BUCKETS)),
        View(instrument_name=FLOAT_BOUNDS, aggregation=ExplicitBucketHistogramAggregation(FLOAT_BUCKETS)),
    ]


def _record(meter) -> None:
    """Conforming instruments first, then the ones that show what the convention prevents."""
    requests = meter.create_counter("sublarr_test_requests_total", unit="", description="Requests.")
    requests.add(3, {"method": "GET", "status": "200"})
    requests.add(1, {"method": "POST", "status": "500"})
    duration = meter.create_histogram("sublarr_test_duration_seconds", unit="s", description="Duration.")
    for value in (0.003, 0.3, 1, 7.5):
        duration.record(value, {"method": "GET"})
    meter.create_observable_gauge("sublarr_test_size_bytes", unit="By", description="Size.",
                                  callbacks=[lambda _: [Observation(1024, {"mount": "/data"})]])
    meter.create_gauge("sublarr_test_cpu_percent", unit="%", description="CPU.").set(12.5)
    meter.create_gauge("sublarr_test_queue_depth", description="Jobs waiting.").set(4, {"queue": "default"})
    meter.create_gauge("sublarr_test_cache_hit_ratio", unit="1", description="Hit ratio.").set(0.75)
    meter.create_up_down_counter("sublarr_test_active_requests", description="In flight.").add(2)

    meter.create_counter("sublarr_test_events", description="No _total.").add(1)
    meter.create_counter("sublarr_test_read", unit="By", description="No _bytes_total.").add(5)
    meter.create_gauge("sublarr_test_load", unit="1", description="No _ratio.").set(0.5)
    meter.create_histogram("sublarr_test_latency", unit="ms", description="No _milliseconds.").record(3)
    meter.create_histogram(FLOAT_BOUNDS, unit="s", description="Float bounds.").record(0.7)


def _resource(instance: str) -> Resource:
    return Resource.create({"service.name": "sublarr", "service.instance.id": instance})


def _render_in_process() -> str:
    """The app's own /metrics path: the Prometheus bridge as the telemetry package configures it."""
    registry = CollectorRegistry()
    reader = PrometheusMetricReader(disable_target_info=True, scope_info_enabled=False, registry=registry)
    provider = MeterProvider(resource=_resource("local"), metric_readers=[reader], views=_views())
    _record(provider.get_meter("sublarr.test", "1.0.0"))
    text = generate_latest(registry).decode()
    provider.shutdown()
    return text


def _push(collector: OtelCollector, instance: str, families: set[str]) -> str:
    """OTLP/HTTP push as a multi-process deployment does; returns the collector's
    exposition once every expected family shows up for this instance."""
    exporter = OTLPMetricExporter(endpoint=collector.otlp_http_endpoint + "/v1/metrics", timeout=5)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=500)
    provider = MeterProvider(resource=_resource(instance), metric_readers=[reader], views=_views())
    try:
        _record(provider.get_meter("sublarr.test", "1.0.0"))
        provider.force_flush(5_000)
        return wait_for(lambda: _has_families(collector.scrape(), instance, families), timeout=10,
                        what=f"{sorted(families)} for instance {instance} on the collector")
    finally:
        provider.shutdown()


def _has_families(text: str, instance: str, families: set[str]) -> str | None:
    present = {name for name, _ in _samples(text, instance)}
    return text if all(any(s.startswith(f) for s in present) for f in families) else None


# -- reading an exposition --------------------------------------------------------
def _samples(text: str, instance: str | None = None):
    """(sample name, labels) of sublarr_* samples, only this instance's on the collector."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("sublarr_") and (
                    instance is None or sample.labels.get("instance") == instance):
                yield sample.name, dict(sample.labels)


def _shape(text: str, names: set[str], instance: str | None = None) -> dict:
    """Per family: type, HELP, label keys (without job/instance), `le` strings,
    and every sample's (name, labels, value), as a scraper sees them."""
    out = {}
    for family in text_string_to_metric_families(text):
        samples = [s for s in family.samples
                   if instance is None or s.labels.get("instance") == instance]
        wanted = {family.name, family.name + "_total"} & names
        if not wanted or not samples:
            continue
        keys, les, points = set(), set(), set()
        for sample in samples:
            labels = {k: v for k, v in sample.labels.items() if k not in ADDED_BY_COLLECTOR}
            if "le" in labels:
                les.add(labels["le"])
            keys |= set(labels) - {"le"}
            points.add((sample.name, frozenset(labels.items()), sample.value))
        out[wanted.pop()] = {"type": family.type, "help": family.documentation,
                             "label_keys": keys, "le": les, "samples": points}
    return out


def _type_lines(text: str, names: set[str]) -> set[str]:
    """The literal `# TYPE` lines: names exactly as rendered, no parser normalisation."""
    return {line for line in text.splitlines()
            if line.startswith("# TYPE ") and line.split()[2] in names}


# -- fixtures ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def in_process() -> str:
    return _render_in_process()


@pytest.fixture(scope="module")
def pushed(otel_collector):
    """One push to the shared collector for the module's comparisons: (text, instance)."""
    otel_collector.ensure_running()
    instance = f"test-{uuid.uuid4().hex[:8]}"
    return _push(otel_collector, instance, CONFORMING | NONCONFORMING), instance


# -- validate -----------------------------------------------------------------------
@pytest.fixture
def no_vendor_env(monkeypatch):
    """The default set-up: no VENDOR_* variable, whatever the calling shell has."""
    for key in [k for k in os.environ if k.startswith("VENDOR_")]:
        monkeypatch.delenv(key)


def test_shipped_config_validates_without_vendor_env(otelcol_binary, no_vendor_env):
    result = validate(otelcol_binary)
    assert result.returncode == 0, result.stderr


def test_vendor_overlay_validates_with_an_endpoint(otelcol_binary, no_vendor_env):
    result = validate(otelcol_binary, [VENDOR_CONFIG],
                      env={"VENDOR_OTLP_ENDPOINT": "https://otlp.example.com"})
    assert result.returncode == 0, result.stderr


def test_vendor_overlay_without_an_endpoint_fails_loudly(otelcol_binary, no_vendor_env):
    result = validate(otelcol_binary, [VENDOR_CONFIG])
    assert result.returncode != 0
    assert "otlp_http/vendor" in result.stderr and "endpoint" in result.stderr, result.stderr


# -- names: the pushed series equal the in-process ones -------------------------
def test_conforming_names_types_labels_and_buckets_match_the_python_bridge(pushed, in_process):
    text, instance = pushed
    assert _shape(text, CONFORMING, instance) == _shape(in_process, CONFORMING)
    assert set(_shape(text, CONFORMING, instance)) == CONFORMING


def test_type_lines_are_literally_identical(pushed, in_process):
    text, _ = pushed
    assert _type_lines(text, CONFORMING) == _type_lines(in_process, CONFORMING)
    assert "# TYPE sublarr_test_requests_total counter" in _type_lines(text, CONFORMING)
    assert "# TYPE sublarr_test_duration_seconds histogram" in _type_lines(text, CONFORMING)


def test_no_suffix_is_added_twice(pushed):
    text, _ = pushed
    names = {name for name, _ in _samples(text)}
    for doubled in ("_total_total", "_seconds_seconds", "_bytes_bytes", "_percent_percent",
                    "_ratio_ratio", "_bytes_total", "_seconds_total"):
        assert not [name for name in names if doubled in name], doubled


def test_bucket_bounds_render_as_in_python(pushed):
    text, instance = pushed
    les = _shape(text, {"sublarr_test_duration_seconds"}, instance)["sublarr_test_duration_seconds"]["le"]
    assert les == {"0.01", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"}


def test_collector_adds_exactly_job_and_instance(pushed):
    """With the shapes equal once job/instance are dropped (test above), this
    makes it exact: both labels on every series, nothing from resource or scope."""
    text, instance = pushed
    samples = list(_samples(text, instance))
    assert len(samples) > 20
    for name, labels in samples:
        assert (labels["job"], labels["instance"]) == ("sublarr", instance), name
        assert not [k for k in labels if k.startswith(("otel_", "service_", "telemetry_"))], name


def test_other_resource_attributes_only_reach_target_info(pushed, in_process):
    """The collector always adds target_info (the Python bridge is told not to);
    service.* become job/instance, the rest (telemetry_sdk_*) stays here."""
    text, instance = pushed
    [info] = [s for f in text_string_to_metric_families(text) if f.name == "target_info"
              for s in f.samples if s.labels.get("instance") == instance]
    assert info.labels["job"] == "sublarr"
    assert {k for k in info.labels if k not in ADDED_BY_COLLECTOR} == {
        "telemetry_sdk_language", "telemetry_sdk_name", "telemetry_sdk_version"}
    assert "target_info" not in in_process


# -- what the convention guards against ------------------------------------------------
def test_names_missing_their_suffix_diverge_between_paths(pushed, in_process):
    """Pass-through means a name lacking its suffix stays bare on the collector,
    while the Python bridge appends `_total` and unit words (never `_ratio`).
    So every instrument must be named with its final suffix."""
    text, instance = pushed
    collector = {line.split()[2] for line in _type_lines(text, NONCONFORMING | SUFFIXED)}
    local = {line.split()[2] for line in _type_lines(in_process, NONCONFORMING | SUFFIXED)}
    assert collector == {"sublarr_test_events", "sublarr_test_read", "sublarr_test_load",
                         "sublarr_test_latency"}
    assert local == {"sublarr_test_events_total", "sublarr_test_read_bytes_total",
                     "sublarr_test_load", "sublarr_test_latency_milliseconds"}


def test_float_bounds_differ_integral_ones_must_be_ints(pushed, in_process):
    """Go prints 1.0 as le="1", Python as le="1.0": two different series to Prometheus."""
    text, instance = pushed
    assert "1" in _shape(text, {FLOAT_BOUNDS}, instance)[FLOAT_BOUNDS]["le"]
    assert "1.0" in _shape(in_process, {FLOAT_BOUNDS})[FLOAT_BOUNDS]["le"]


# -- why the naming options must be explicit ------------------------------------------
def test_default_naming_appends_suffixes_despite_add_metric_suffixes_false(otelcol_binary):
    """Without translation_strategy, v0.165.0 ignores `add_metric_suffixes: false`
    (beta gate exporter.prometheusexporter.DisableAddMetricSuffixes) and appends
    suffixes; without `without_scope_info` it adds otel_scope_* labels."""
    overlay = ['yaml:exporters::prometheus::translation_strategy: ""',
               "yaml:exporters::prometheus::add_metric_suffixes: false",
               "yaml:exporters::prometheus::without_scope_info: false"]
    with OtelCollector(otelcol_binary, extra_configs=overlay) as legacy:
        instance = f"legacy-{uuid.uuid4().hex[:8]}"
        text = _push(legacy, instance, CONFORMING | SUFFIXED)
    names = {line.split()[2] for line in _type_lines(text, NONCONFORMING | SUFFIXED | CONFORMING)}
    assert names == CONFORMING | SUFFIXED  # already-suffixed names are not doubled either way
    [(_, labels)] = [s for s in _samples(text, instance) if s[0] == "sublarr_test_cpu_percent"]
    assert {"otel_scope_name", "otel_scope_version", "otel_scope_schema_url"} <= set(labels)


# -- lifecycle ------------------------------------------------------------------------
def test_stop_then_start_keeps_every_port(running_otel_collector):
    collector = running_otel_collector
    ports = _ports(collector)
    collector.stop()
    assert not collector.running
    collector.start()
    assert _ports(collector) == ports
    for port in ports:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    instance = f"restart-{uuid.uuid4().hex[:8]}"
    _push(collector, instance, {"sublarr_test_requests_total"})


def _ports(collector: OtelCollector) -> tuple[int, ...]:
    return (collector.port, collector.otlp_http_port, collector.otlp_grpc_port,
            collector.health_port, collector.self_metrics_port)


def test_self_metrics_are_served_on_their_own_port(running_otel_collector):
    with urllib.request.urlopen(running_otel_collector.self_metrics_url, timeout=5) as response:
        assert "otelcol_process_uptime" in response.read().decode()
