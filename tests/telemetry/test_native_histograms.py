"""Native histograms, opt-in (SUBLARR_METRICS_NATIVE_HISTOGRAMS): the bucket
mapping, the setting, and the round trip through a real Prometheus 3 that
receives OTLP, where histogram_quantile over the native histogram agrees with
the classic one within the classic bucket's error."""
import math
import random
import time

import pytest
import redis

from harness.support import REPO, ScriptedClock, scrape, wait_for
from telemetry import Settings, SettingsError, Telemetry, catalog
from telemetry.native_histograms import SCALE, bucket_index

BASE = 2 ** (2 ** -SCALE)
HTTP = "sublarr_http_request_duration_seconds"
NATIVE_FAMILIES = (HTTP, "sublarr_db_query_duration_seconds", "sublarr_job_duration_seconds")


# -- the bucket mapping ---------------------------------------------------------------
def test_bucket_index_puts_every_value_in_its_bucket():
    rng = random.Random(5)
    values = [rng.lognormvariate(-2, 3) for _ in range(20_000)] + [2.0 ** e for e in range(-20, 20)]
    for value in values:
        i = bucket_index(value)
        low, high = BASE ** i, BASE ** (i + 1)
        # Exact at powers of two; elsewhere within float error of the bound.
        assert low * (1 - 1e-12) < value <= high * (1 + 1e-12), (value, i, low, high)


def test_powers_of_two_are_upper_bounds():
    assert bucket_index(1.0) == -1
    assert bucket_index(2.0) == (1 << SCALE) - 1
    assert bucket_index(0.5) == -(1 << SCALE) - 1


# -- the setting -------------------------------------------------------------------------
def test_setting_defaults_to_off_and_rejects_unknown_modes():
    assert Settings.from_env({}).native_histograms == "off"
    assert Settings.from_env({"SUBLARR_METRICS_NATIVE_HISTOGRAMS": "ONLY"}).native_histograms == "only"
    with pytest.raises(SettingsError, match="SUBLARR_METRICS_NATIVE_HISTOGRAMS.*off, also, only"):
        Settings.from_env({"SUBLARR_METRICS_NATIVE_HISTOGRAMS": "yes"})


# -- round trip through Prometheus 3 ---------------------------------------------------
def push(monkeypatch, prometheus, service):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", prometheus.otlp_metrics_endpoint)
    monkeypatch.setenv("OTEL_SERVICE_NAME", service)


def value(prometheus, expr):
    result = prometheus.query(expr)
    return float(result[0]["value"][1]) if result else None


def exact_quantile(values, q):
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def test_native_quantiles_agree_with_the_classic_ones(otlp_prometheus, monkeypatch):
    from flask import Flask

    prometheus = otlp_prometheus()
    push(monkeypatch, prometheus, "sublarr-native")
    rng = random.Random(11)
    durations = [min(max(rng.lognormvariate(math.log(0.08), 1.2), 0.002), 9.0) for _ in range(3000)]
    app = Flask("native")
    app.get("/api/v1/items/<int:n>")(lambda n: "ok")
    settings = Settings(exporters=("otlp",), native_histograms="also", export_interval_ms=500)
    telemetry = Telemetry(settings=settings, clock=ScriptedClock(durations)).init_app(app)
    client = app.test_client()
    try:
        for i in range(len(durations)):
            assert client.get(f"/api/v1/items/{i}").status_code == 200
        selector = '{job="sublarr-native"}'
        wait_for(lambda: value(prometheus, f"histogram_count(sum({HTTP}{selector}))") == len(durations),
                 timeout=30, interval=0.5, what="the native histogram with every request")
        wait_for(lambda: value(prometheus, f"sum({HTTP}_count{selector})") == len(durations),
                 timeout=30, interval=0.5, what="the classic histogram with every request")
    finally:
        telemetry.shutdown()

    bounds = [*catalog.family(HTTP).buckets, math.inf]
    for q in (0.5, 0.9, 0.95, 0.99):
        classic = value(prometheus, f"histogram_quantile({q}, sum by (le) ({HTTP}_bucket{selector}))")
        native = value(prometheus, f"histogram_quantile({q}, sum({HTTP}{selector}))")
        exact = exact_quantile(durations, q)
        # The classic estimate's bucket: its width is the classic error.
        upper = next(b for b in bounds if classic <= b)
        lower = max([0.0, *(b for b in bounds if b < classic)])
        assert abs(native - classic) <= upper - lower, (q, native, classic, (lower, upper))
        # And the native estimate is close to the truth, whatever the classic buckets.
        assert 1 / BASE ** 2 <= native / exact <= BASE ** 2, (q, native, exact)


def test_only_mode_sends_native_histograms_for_requests_queries_and_jobs(otlp_prometheus, redis_url, tmp_path,
                                                                          monkeypatch):
    """``only``: the OTLP path carries the three duration families as native
    histograms and no classic buckets for them; the app's own /metrics keeps the
    classic ones; the native dashboard's panels have data."""
    from refapp import Config, create_app, jobs
    from rq import Queue
    from sublarr_dashboards import native
    from telemetry.dashboard_json import panel_queries
    from telemetry.rq_worker import SimpleWorker, WorkerTelemetry

    prometheus = otlp_prometheus()
    env = {"SUBLARR_DATABASE_URL": f"sqlite:///{tmp_path}/native.db", "SUBLARR_REDIS_URL": redis_url,
           "SUBLARR_DATA_DIR": str(tmp_path), "SUBLARR_SIM_LATENCY_SCALE": "0.05",
           "SUBLARR_SIM_FAILURE_RATE": "0", "SUBLARR_METRICS_NATIVE_HISTOGRAMS": "only",
           "OTEL_METRIC_EXPORT_INTERVAL": "500", "OTEL_METRICS_EXPORTER": "prometheus,otlp"}
    for key, val in env.items():
        monkeypatch.setenv(key, val)
    push(monkeypatch, prometheus, "sublarr")
    app = create_app(Config.from_env(env))
    client = app.test_client()
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "sublarr-worker")
    worker_telemetry = WorkerTelemetry(job_functions=jobs.JOB_FUNCTIONS)
    connection = redis.Redis.from_url(redis_url)
    worker = SimpleWorker([Queue("sublarr", connection=connection)], connection=connection,
                          telemetry=worker_telemetry)
    try:
        client.post("/api/v1/wanted", json={"title": "Show", "language": "de"})
        for wave in range(4):  # several pushes apart, so rates over the window move
            for i in range(10):
                client.get(f"/api/v1/series/{i % 3}")
                client.post("/api/v1/jobs", json={"file_path": f"/m/{wave}-{i}.srt", "source_lang": "en",
                                                  "target_lang": "de", "fmt": "srt"})
            worker.work(burst=True)
            time.sleep(1.2)
        direct = scrape(client)

        def arrived():
            return all(value(prometheus, f"histogram_count(sum({name}))") for name in NATIVE_FAMILIES)
        wait_for(arrived, timeout=30, interval=0.5, what="the three native histograms")
        for name in NATIVE_FAMILIES:
            assert prometheus.query(f"{name}_bucket") == [], f"{name}: classic buckets on the OTLP path"
        assert f"{HTTP}_bucket{{" in direct and "sublarr_db_query_duration_seconds_bucket{" in direct
        # The native histogram and the counter recorded with it agree exactly.
        assert value(prometheus, f'histogram_count(sum({HTTP}{{job="sublarr"}}))') == value(
            prometheus, 'sum(sublarr_http_requests_total{job="sublarr"})')

        dashboard = native.build()
        builtins = {"$__rate_interval": "15s", "$job": ".*", "$instance": ".*"}
        for title, ref, expr in panel_queries(dashboard):
            for variable, replacement in builtins.items():
                expr = expr.replace(variable, replacement)
            result = prometheus.query(expr)
            numbers = [float(s["value"][1]) for s in result]
            assert any(not math.isnan(n) for n in numbers), f"{title} / {ref}: no data: {expr}"
    finally:
        worker_telemetry.shutdown()
        app.extensions["sublarr_telemetry"].shutdown()


def test_committed_native_dashboard_is_generated():
    from sublarr_dashboards import native
    assert native.main(["--check"]) == 0, "run scripts/dashboards native"
    assert native.out_path().parent == REPO / "monitoring" / "grafana" / "dashboards-native"
