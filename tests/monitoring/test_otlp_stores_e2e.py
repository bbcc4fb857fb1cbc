"""End to end on the push-only paths: the stack of otlp_stack.py (gunicorn with
two workers, a forking RQ worker, a capped app) pushes OTLP

- straight into Prometheus 3 (shipped prometheus.otlp.yml, its OTLP
  receiver, the shipped rules), and
- through the collector with the shipped vendor overlay into VictoriaMetrics
  (queried through its Prometheus API),

and on both every dashboard panel and recording-rule expression returns data
(scrape-only `up` panels aside), the series carry exactly the labels of the
Prometheus paths, and `sublarr-telemetry check` passes.
"""
import subprocess

import pytest

from harness.collector import VENDOR_CONFIG, OtelCollector
from harness.otlp_stack import CAPPED_JOB, PUSHING_JOBS, OtlpStack, assert_every_panel_has_data
from harness.support import CLI, samples
from telemetry import catalog

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
FAMILY_OF_SAMPLE = {name: family for family in catalog.FAMILIES for name in family.sample_names()}


def label_problems(store) -> list[str]:
    """Every stored sublarr_* series: a catalog sample with exactly job, instance,
    the family's label keys (and le for buckets)."""
    problems = []
    for labels in store.series('{__name__=~"sublarr_.+"}'):
        name = labels.pop("__name__")
        family = FAMILY_OF_SAMPLE.get(name)
        if family is None:
            problems.append(f"{name}: not a catalog series")
            continue
        expected = {"job", "instance", *family.label_keys} | ({"le"} if name.endswith("_bucket") else set())
        if set(labels) != expected:
            problems.append(f"{name}: labels {sorted(labels)} != {sorted(expected)}")
    return sorted(set(problems))


def run_check(url: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "check", "--prometheus", url,
                           "--rate-interval", "15s"], capture_output=True, text=True, timeout=120)


def assert_same_series_as_the_prometheus_paths(store):
    assert label_problems(store) == []
    assert set(store.label_values("job", "sublarr_info")) == set(PUSHING_JOBS)
    overflow = store.query("sublarr_telemetry_series_overflow_total > 0")
    assert {s["metric"]["job"] for s in overflow} == {CAPPED_JOB}, overflow
    result = run_check(store.url)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 required missing" in result.stdout


def test_otlp_straight_into_prometheus_3(tmp_path, postgres_url, redis_url, otlp_prometheus):
    prometheus = otlp_prometheus()
    stack = OtlpStack(tmp_path, prometheus.otlp_metrics_endpoint, postgres_url, redis_url)
    try:
        stack.start()
        assert_every_panel_has_data(prometheus, stack)
        assert_same_series_as_the_prometheus_paths(prometheus)
        # Prometheus evaluated the shipped rules on the pushed series.
        broken = {rule["name"]: rule.get("lastError") for rule in prometheus.rules() if rule["health"] != "ok"}
        assert broken == {}
        records = {rule["name"] for rule in prometheus.rules() if rule["type"] == "recording"}
        for record in records:
            assert prometheus.query(record), f"recording rule {record} produced nothing"
    finally:
        stack.stop()


def test_victoriametrics_through_the_vendor_overlay(tmp_path, postgres_url, redis_url, otelcol_binary,
                                                    victoriametrics):
    collector = OtelCollector(otelcol_binary, extra_configs=[VENDOR_CONFIG],
                              env={"VENDOR_OTLP_ENDPOINT": victoriametrics.otlp_endpoint})
    stack = OtlpStack(tmp_path, collector.otlp_http_endpoint + "/v1/metrics", postgres_url, redis_url)
    try:
        collector.start()
        stack.start()
        assert_every_panel_has_data(victoriametrics, stack)
        assert_same_series_as_the_prometheus_paths(victoriametrics)
        # The alerts' expressions run there too (VictoriaMetrics has no rule
        # engine of its own; vmalert would evaluate them).
        from harness.monitoring import alerting_rules
        for rule in alerting_rules():
            victoriametrics.query(rule["expr"])
        # The collector's own Prometheus path still has its job/instance from the untouched resource.
        info = samples(collector.scrape(), "sublarr_info")
        assert {labels["job"] for labels, _ in info} == set(PUSHING_JOBS), info
    finally:
        stack.stop()
        collector.close()
