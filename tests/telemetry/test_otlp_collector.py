"""OTLP push through the real OpenTelemetry Collector.

The same families arrive on both paths; forking RQ workers and a two-worker
gunicorn count exactly once; a collector outage never reaches the request
path and data flows again afterwards.
"""
import os
import subprocess
import sys
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from harness.net import answers_ok
from harness.both_paths import enqueue_translations_at, run_web_and_worker
from harness.support import REPO, free_port, samples, scrape, terminate, total, venv_executable, wait_for
from telemetry import catalog

PROCESS_LABELS = {"job", "instance"}


def otlp_env(collector, **extra):
    env = {"OTEL_METRICS_EXPORTER": "otlp",
           "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": collector.otlp_http_endpoint + "/v1/metrics",
           "OTEL_METRIC_EXPORT_INTERVAL": "500"}
    env.update(extra)
    return env


def shapes(text):
    """family -> (type, label keys without process labels, le values) for sublarr_* families."""
    out = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("sublarr_"):
            continue
        keys, les = set(), set()
        for sample in family.samples:
            labels = dict(sample.labels)
            if "le" in labels:
                les.add(labels.pop("le"))
            keys |= set(labels) - PROCESS_LABELS
        name = family.name + "_total" if family.type == "counter" else family.name
        out[name] = (family.type, frozenset(keys), frozenset(les))
    return out


def catalog_shape(family):
    les = frozenset({str(b) for b in family.buckets} | {"+Inf"}) if family.buckets else frozenset()
    return (family.kind.value, frozenset(family.label_keys), les)


def test_both_paths_give_the_same_families(otel_collector, redis_url, tmp_path, monkeypatch):
    app, client = run_web_and_worker(monkeypatch, redis_url, tmp_path, otlp_env(otel_collector))

    direct = scrape(client)
    app_shapes = shapes(direct)

    def arrived():
        text = otel_collector.scrape()
        got = shapes(text)
        need = set(app_shapes) | {"sublarr_jobs_total", "sublarr_translation_total"}
        return text if need <= set(got) else None
    via_collector = wait_for(arrived, timeout=30, interval=0.5, what="every family at the collector")
    app.extensions["sublarr_telemetry"].shutdown()

    collector_shapes = shapes(via_collector)
    for name, shape in app_shapes.items():
        assert collector_shapes.get(name) == shape, f"{name}: direct {shape} != collector {collector_shapes.get(name)}"
    for name, shape in collector_shapes.items():
        assert shape == catalog_shape(catalog.family(name)), name
    contract = {f.name for f in catalog.FAMILIES if f.group not in ("jobs", "telemetry")}
    assert {"sublarr_translation_total", "sublarr_jobs_total", "sublarr_redis_connected"} <= set(collector_shapes)
    assert contract - set(collector_shapes) <= {"sublarr_disk_usage_percent"}, contract - set(collector_shapes)
    # Process identity travels as job/instance, nothing else.
    jobs_seen = {labels["job"] for labels, _ in samples(via_collector, "sublarr_info")}
    assert jobs_seen == {"sublarr-web", "sublarr-worker"}
    assert "otel_scope" not in via_collector


def run_worker(env, *args):
    return subprocess.run([sys.executable, "-m", "refapp.worker", "--burst", *args], env=env,
                          capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize("simple", [False, True], ids=["forking", "simple"])
def test_rq_worker_jobs_arrive_exactly_once(otel_collector, redis_url, tmp_path, simple):
    n = 12
    service = f"sublarr-worker-{'simple' if simple else 'forking'}"
    db_url = f"sqlite:///{tmp_path}/jobs.db"
    enqueue_translations_at(db_url, redis_url, n)
    env = dict(os.environ, **otlp_env(otel_collector, OTEL_SERVICE_NAME=service),
               SUBLARR_DATABASE_URL=db_url, SUBLARR_REDIS_URL=redis_url, SUBLARR_DATA_DIR=str(tmp_path),
               SUBLARR_SIM_LATENCY_SCALE="0", SUBLARR_SIM_FAILURE_RATE="0",
               PYTHONPATH=str(REPO / "backend"))
    result = run_worker(env, *(["--simple"] if simple else []))
    assert result.returncode == 0, result.stderr[-3000:]

    def arrived():
        text = otel_collector.scrape()
        done = samples(text, "sublarr_jobs_total", job=service, status="finished")
        return text if done and sum(v for _, v in done) >= n else None
    text = wait_for(arrived, timeout=30, interval=0.5, what="the worker's job metrics")
    time.sleep(1.5)  # one more push interval: a double count would show now
    text = otel_collector.scrape()
    finished = samples(text, "sublarr_jobs_total", job=service, status="finished")
    assert [v for _, v in finished] == [n], finished
    translations = samples(text, "sublarr_translation_total", job=service)
    assert [v for _, v in translations] == [n], translations
    assert len({labels["instance"] for labels, _ in samples(text, "sublarr_info", job=service)}) == 1
    durations = samples(text, "sublarr_job_duration_seconds_count", job=service)
    assert [v for _, v in durations] == [n]


@pytest.mark.parametrize("preload,given_id", [
    (True, None),
    # As the OpenTelemetry Operator injects it: one id per container, shared by its workers.
    (False, "sublarr-ns.sublarr-pod.web"),
    (True, "sublarr-ns.sublarr-pod.web"),
])
def test_gunicorn_two_workers_give_exact_totals(otel_collector, tmp_path, preload, given_id):
    gunicorn = venv_executable("gunicorn")
    port = free_port()
    service = f"sublarr-gunicorn-{int(preload)}-{int(given_id is not None)}"
    env = dict(os.environ, **otlp_env(otel_collector, OTEL_SERVICE_NAME=service),
               SUBLARR_DATA_DIR=str(tmp_path), SUBLARR_SIM_LATENCY_SCALE="0", PYTHONPATH=str(REPO / "backend"))
    env.pop("SUBLARR_DATABASE_URL", None)
    env.pop("SUBLARR_REDIS_URL", None)
    if given_id is not None:
        env["OTEL_RESOURCE_ATTRIBUTES"] = f"service.instance.id={given_id}"
    server = subprocess.Popen([str(gunicorn), *(["--preload"] if preload else []), "-w", "2", "--threads", "2",
                               "-b", f"127.0.0.1:{port}",
                               "refapp.wsgi:app"], env=env, stdout=subprocess.DEVNULL,
                              stderr=open(tmp_path / "gunicorn.log", "w"))
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: answers_ok(base + "/api/v1/health"), timeout=30, what="gunicorn to serve")
        m = 200
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda i: requests.get(f"{base}/api/v1/jobs", timeout=10).status_code,
                                     range(m)))
        assert statuses == [200] * m

        def arrived():
            text = otel_collector.scrape()
            return text if total(text, "sublarr_http_requests_total", job=service) >= m else None
        wait_for(arrived, timeout=30, interval=0.5, what="all requests at the collector")
        time.sleep(1.5)
        text = otel_collector.scrape()
        assert total(text, "sublarr_http_requests_total", job=service) == m
        # Each process that built a pipeline (the preloading master too) has its own service.instance.id.
        instances = {labels["instance"] for labels, _ in samples(text, "sublarr_info", job=service)}
        assert len(instances) == (3 if preload else 2), f"one instance per process: {instances}"
        if given_id is not None:
            assert all(i.startswith(given_id + "-") for i in instances), instances
    finally:
        terminate(server, timeout=20)
    log = (tmp_path / "gunicorn.log").read_text()
    assert "Traceback" not in log, log[-3000:]


def test_collector_outage_never_reaches_requests(otel_collector, tmp_path, monkeypatch):
    from flask import Flask

    from telemetry import Settings, Telemetry
    for key, value in otlp_env(otel_collector, OTEL_SERVICE_NAME="sublarr-outage").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "1")
    app = Flask("outage")
    app.get("/api/v1/ping/<int:n>")(lambda n: "pong")
    telemetry = Telemetry(settings=Settings.from_env()).init_app(app)
    client = app.test_client()
    try:
        for i in range(50):
            client.get(f"/api/v1/ping/{i}")
        wait_for(lambda: total(otel_collector.scrape(), "sublarr_http_requests_total", job="sublarr-outage") == 50,
                 timeout=20, what="the first 50 requests")
        otel_collector.stop()
        import psutil
        rss_before = psutil.Process().memory_info().rss
        served = 0
        deadline = time.monotonic() + 4  # several push intervals against a dead endpoint
        while time.monotonic() < deadline:
            response = client.get(f"/api/v1/ping/{served}")
            assert response.status_code == 200 and response.data == b"pong"
            served += 1
        rss_growth = psutil.Process().memory_info().rss - rss_before
        assert rss_growth < 50 * 1024 * 1024, f"RSS grew by {rss_growth} bytes while the collector was down"
        otel_collector.start()
        expected = 50 + served
        wait_for(lambda: total(otel_collector.scrape(), "sublarr_http_requests_total", job="sublarr-outage")
                 == expected, timeout=30, interval=0.5, what="cumulative totals after the restart")
    finally:
        telemetry.shutdown()


def test_hostile_label_values_never_stop_otlp_pushes(otel_collector, tmp_path, monkeypatch):
    """A value protobuf cannot encode (a lone surrogate) would fail every export of the process."""
    from flask import Flask

    from telemetry import Settings, StateTargets, Telemetry, events
    for key, value in otlp_env(otel_collector, OTEL_SERVICE_NAME="sublarr-hostile").items():
        monkeypatch.setenv(key, value)
    app = Flask("hostile_otlp")
    breakers = {b"bad\xff": type("B", (), {"state": "open"})()}
    telemetry = Telemetry(settings=Settings.from_env(), targets=StateTargets(breakers=lambda: breakers)).init_app(app)
    try:
        events.provider_searched("lone\udcff", "success")
        events.provider_searched("fine", "success")
        events.provider_downloaded(b"bytes\xfe", "srt")

        def arrived():
            text = otel_collector.scrape()
            searched = {labels["provider"] for labels, _ in samples(text, "sublarr_provider_search_total",
                                                                    job="sublarr-hostile")}
            return text if {"lone\ufffd", "fine"} <= searched else None
        text = wait_for(arrived, timeout=30, interval=0.5, what="the hostile labels at the collector")
        searched = {labels["provider"]: value for labels, value in samples(text, "sublarr_provider_search_total",
                                                                           job="sublarr-hostile")}
        assert searched == {"lone\ufffd": 1, "fine": 1}
        downloads = samples(text, "sublarr_provider_download_total", job="sublarr-hostile")
        assert [(labels["provider"], labels["format"], value) for labels, value in downloads] == [("bytes\ufffd", "srt", 1)]
        breakers_out = samples(text, "sublarr_circuit_breaker_state", job="sublarr-hostile")
        assert [(labels["provider"], value) for labels, value in breakers_out] == [("bad\ufffd", 1)]
        rewritten = samples(text, "sublarr_telemetry_label_values_sanitized_total", job="sublarr-hostile",
                           family="sublarr_provider_search_total")
        assert [v for _, v in rewritten] == [1]
    finally:
        telemetry.shutdown()
