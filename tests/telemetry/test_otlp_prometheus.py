"""OTLP straight into Prometheus 3 (its OTLP receiver, the shipped
prometheus.otlp.yml): the same series as the direct scrape, and exact totals
from a two-worker gunicorn and a forking RQ worker.

Bucket bounds are compared as numbers: Prometheus 3 stores scraped bounds as
`le="1.0"` and OTLP ones as sent (`le="1"`); the dashboards and rules never
match `le` by value (tests/monitoring/test_le_spelling.py).
"""
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from harness.net import answers_ok
from harness.both_paths import enqueue_translations_at, run_web_and_worker
from harness.support import REPO, free_port, scrape, terminate, wait_for
from telemetry import catalog

pytestmark = pytest.mark.timeout(240)
PROCESS_LABELS = {"job", "instance"}
FAMILY_OF_SAMPLE = {name: family for family in catalog.FAMILIES for name in family.sample_names()}


def push_env(prometheus, **extra):
    return {"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": prometheus.otlp_metrics_endpoint,
            "OTEL_METRIC_EXPORT_INTERVAL": "500", **extra}


def _bound(value: str) -> float:
    return float(value)  # '+Inf' -> inf, '1' and '1.0' -> 1.0


def text_shapes(text):
    """sample name -> (label keys without process labels, le bounds as floats), sublarr_* only;
    and family name -> type."""
    shapes, types = {}, {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("sublarr_"):
            continue
        types[family.name] = family.type
        for sample in family.samples:
            labels = dict(sample.labels)
            le = labels.pop("le", None)
            keys, bounds = shapes.setdefault(sample.name, (set(), set()))
            keys.update(set(labels) - PROCESS_LABELS)
            if le is not None:
                bounds.add(_bound(le))
    return {name: (frozenset(k), frozenset(b)) for name, (k, b) in shapes.items()}, types


def stored_shapes(series):
    """As text_shapes, from the label sets Prometheus stored (its own __type__
    and __unit__ metadata labels left out)."""
    shapes = {}
    for labels in series:
        labels = {k: v for k, v in labels.items() if k not in ("__type__", "__unit__")}
        name = labels.pop("__name__")
        le = labels.pop("le", None)
        keys, bounds = shapes.setdefault(name, (set(), set()))
        keys.update(set(labels) - PROCESS_LABELS)
        if le is not None:
            bounds.add(_bound(le))
    return {name: (frozenset(k), frozenset(b)) for name, (k, b) in shapes.items()}


def test_pushed_series_equal_the_direct_scrape(otlp_prometheus, redis_url, tmp_path, monkeypatch):
    # type-and-unit-labels: Prometheus keeps each pushed metric's OTLP type as
    # a __type__ label, so the types can be compared with the scrape's TYPE lines.
    prometheus = otlp_prometheus(flags=["--enable-feature=type-and-unit-labels"])
    app, client = run_web_and_worker(monkeypatch, redis_url, tmp_path, push_env(prometheus))

    def both_complete():
        """A direct scrape and the stored series with the same sample names: a
        state source that missed one collection's time budget is back in both."""
        direct_shapes, direct_types = text_shapes(scrape(client))
        series = prometheus.series('{__name__=~"sublarr_.+"}')
        web = stored_shapes([s for s in series if s["job"] == "sublarr-web"])
        needed = {"sublarr_jobs_total", "sublarr_job_duration_seconds_bucket"}
        complete = set(web) == set(direct_shapes) and needed <= {s["__name__"] for s in series}
        return (direct_shapes, direct_types, series, web) if complete else None
    try:
        direct_shapes, direct_types, series, web = wait_for(both_complete, timeout=30, interval=0.5,
                                                            what="the same series in both")
    except AssertionError:
        direct_shapes, direct_types = text_shapes(scrape(client))
        series = prometheus.series('{__name__=~"sublarr_.+"}')
        web = stored_shapes([s for s in series if s["job"] == "sublarr-web"])
    app.extensions["sublarr_telemetry"].shutdown()

    # Names, label keys and bucket bounds: identical to what the app serves itself.
    assert web == direct_shapes
    # Types: the scrape's TYPE of each family is the catalog's, and what
    # arrived over OTLP has that type too (Prometheus' __type__ label).
    stored_types = {(s["__name__"], s.get("__type__")) for s in series if s["job"] == "sublarr-web"}
    for sample_name in direct_shapes:
        family = FAMILY_OF_SAMPLE[sample_name]
        assert direct_types[family.name.removesuffix("_total")] == family.kind.value, family.name
        assert {t for name, t in stored_types if name == sample_name} == {family.kind.value}, sample_name
    # The worker's series are catalog series with the catalog's labels and buckets.
    worker = stored_shapes([s for s in series if s["job"] == "sublarr-worker"])
    for name, (keys, bounds) in worker.items():
        family = FAMILY_OF_SAMPLE[name]
        assert keys == set(family.label_keys), name
        if name.endswith("_bucket"):
            assert bounds == {float(b) for b in family.buckets} | {float("inf")}, name
    # Process identity is job (service.name) and instance (service.instance.id), nothing else.
    assert {s["job"] for s in series} == {"sublarr-web", "sublarr-worker"}
    for labels in series:
        own = {"__name__", "__type__", "__unit__", "le"}
        extra = set(labels) - own - PROCESS_LABELS - set(FAMILY_OF_SAMPLE[labels["__name__"]].label_keys)
        assert not extra, labels
    # One instance per process (service.instance.id; here both pipelines share the test's process).
    instances = {(s["job"], s["instance"]) for s in series}
    assert len(instances) == 2 and all(instance for _, instance in instances), instances
    # The rest of the resource is in target_info, one per process.
    info = prometheus.query('target_info{job=~"sublarr-web|sublarr-worker"}')
    assert len(info) == 2 and all("service_version" in s["metric"] for s in info), info


def instant_sum(prometheus, expr: str) -> float | None:
    result = prometheus.query(expr)
    return float(result[0]["value"][1]) if result else None


def test_gunicorn_two_workers_and_a_forking_rq_worker_count_exactly(otlp_prometheus, redis_url, tmp_path):
    prometheus = otlp_prometheus()
    db_url = f"sqlite:///{tmp_path}/exact.db"
    env = dict(os.environ, SUBLARR_DATABASE_URL=db_url, SUBLARR_REDIS_URL=redis_url, SUBLARR_DATA_DIR=str(tmp_path),
               SUBLARR_SIM_LATENCY_SCALE="0", SUBLARR_SIM_FAILURE_RATE="0", PYTHONPATH=str(REPO / "backend"))

    # RQ: n jobs, each run in a forked work-horse.
    n = 12
    enqueue_translations_at(db_url, redis_url, n)
    worker = subprocess.run([sys.executable, "-m", "refapp.worker", "--burst"],
                            env=dict(env, **push_env(prometheus, OTEL_SERVICE_NAME="sublarr-worker")),
                            capture_output=True, text=True, timeout=180)
    assert worker.returncode == 0, worker.stderr[-3000:]

    # Web: m requests spread over two gunicorn workers.
    port, m = free_port(), 200
    web_env = dict(env, **push_env(prometheus, OTEL_SERVICE_NAME="sublarr"))
    web_env.pop("SUBLARR_REDIS_URL")
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "--preload", "-w", "2", "--threads", "2",
                               "-b", f"127.0.0.1:{port}", "refapp.wsgi:app"], env=web_env,
                              stdout=subprocess.DEVNULL, stderr=open(tmp_path / "gunicorn.log", "w"))
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: answers_ok(base + "/api/v1/health"), timeout=30, what="gunicorn to serve")
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda i: requests.get(f"{base}/api/v1/jobs", timeout=10).status_code,
                                     range(m)))
        assert statuses == [200] * m
        requests_total = 'sum(sublarr_http_requests_total{job="sublarr"})'
        wait_for(lambda: (instant_sum(prometheus, requests_total) or 0) >= m, timeout=30, interval=0.5,
                 what="every request in Prometheus")
        time.sleep(1.5)  # a few more pushes: a double count would show now
        assert instant_sum(prometheus, requests_total) == m
        # The preloading master and both workers each push under their own instance.
        assert len(prometheus.query('sublarr_info{job="sublarr"}')) == 3
        # Every request landed in the histogram too, and the dashboards' aggregation sees them.
        assert instant_sum(prometheus, 'sum(sublarr_http_request_duration_seconds_count{job="sublarr"})') == m
    finally:
        terminate(server, timeout=20)
    assert "Traceback" not in (tmp_path / "gunicorn.log").read_text()

    worker_job = '{job="sublarr-worker", status="finished"}'
    assert instant_sum(prometheus, f"sum(sublarr_jobs_total{worker_job})") == n
    assert instant_sum(prometheus, 'sum(sublarr_translation_total{job="sublarr-worker"})') == n
    assert instant_sum(prometheus, f"sum(sublarr_job_duration_seconds_count{worker_job})") == n
    assert len(prometheus.query('sublarr_info{job="sublarr-worker"}')) == 1, "one worker, one instance"
