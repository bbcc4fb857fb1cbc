"""Sublarr's real topology: a web process and an RQ worker that calls create_app() itself.

The worker is ``python -m refapp.worker`` (create_app(), then an rq forking
Worker with an app-context mixin, as Sublarr's worker.py), against a real
Redis. One pipeline per process, the worker role, exactly-once counting of a
job several times longer than the export interval on both paths (its own
SUBLARR_METRICS_LISTEN in Prometheus mode, the real collector in OTLP mode),
and a clean exit.
"""
import os
import re
import subprocess
import sys
import time

import redis

from harness.support import REPO, free_port, sample_value, samples, wait_for
from harness.net import get_text

LONG_JOB_SECONDS = 2.5
EXPORT_INTERVAL_MS = 500  # the long job lasts five intervals
PROVIDERS = 4  # refapp's default providers: one search event each


def seed_job(db_url):
    from refapp.models import TranslationJob, init_db, make_engine
    from sqlalchemy.orm import Session

    engine = make_engine(db_url)
    init_db(engine)
    with Session(engine) as session:
        row = TranslationJob(file_path="/m/long.ass", source_lang="en", target_lang="de", fmt="ass")
        session.add(row)
        session.commit()
        job_id = row.id
    engine.dispose()
    return job_id


def worker_env(tmp_path, redis_url, **extra):
    env = dict(os.environ, SUBLARR_DATABASE_URL=f"sqlite:///{tmp_path}/sublarr.db", SUBLARR_REDIS_URL=redis_url,
               SUBLARR_DATA_DIR=str(tmp_path), SUBLARR_SIM_LATENCY_SCALE="0", SUBLARR_SIM_FAILURE_RATE="0",
               PYTHONPATH=str(REPO / "backend"), OTEL_METRIC_EXPORT_INTERVAL=str(EXPORT_INTERVAL_MS))
    env.update(extra)
    return env


def enqueue_long_job(redis_url, job_id):
    from refapp import jobs
    from rq import Queue
    Queue("sublarr", connection=redis.Redis.from_url(redis_url)).enqueue(
        jobs.long_translation, job_id, LONG_JOB_SECONDS)


def assert_counted_once(text, **match):
    """One long translation job: each of its events, and its queries, exactly once."""
    finished = samples(text, "sublarr_jobs_total", function="refapp.jobs.long_translation", status="finished",
                      **match)
    assert [v for _, v in finished] == [1], finished
    assert [v for _, v in samples(text, "sublarr_translation_total", status="success", **match)] == [1]
    assert sum(v for _, v in samples(text, "sublarr_provider_search_total", **match)) == PROVIDERS
    # translate_job commits "running", then the result: two UPDATEs and one INSERT.
    assert [v for _, v in samples(text, "sublarr_db_queries_total", operation="update", **match)] == [2]
    assert [v for _, v in samples(text, "sublarr_db_queries_total", operation="insert", **match)] == [1]


def test_prometheus_mode_worker_serves_its_own_metrics_and_counts_a_long_job_once(redis_url, tmp_path):
    port = free_port()
    env = worker_env(tmp_path, redis_url, OTEL_METRICS_EXPORTER="prometheus",
                     SUBLARR_METRICS_LISTEN=f"127.0.0.1:{port}")
    job_id = seed_job(env["SUBLARR_DATABASE_URL"])
    log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen([sys.executable, "-m", "refapp.worker"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_for(lambda: get_text(url), timeout=30, what="the worker's metrics listener")
        enqueue_long_job(redis_url, job_id)

        def job_done():
            text = get_text(url)
            return text if text and samples(text, "sublarr_jobs_total", function="refapp.jobs.long_translation") \
                else None
        wait_for(job_done, timeout=60, interval=0.25, what="the long job to finish")
        time.sleep(2 * EXPORT_INTERVAL_MS / 1000)
        text = get_text(url)
    finally:
        worker.terminate()
        worker.wait(20)
        log.close()
    assert_counted_once(text)
    assert len(samples(text, "sublarr_info")) == 1, "one pipeline in the worker process"
    assert samples(text, "sublarr_info")[0][0]["version"] == _refapp_version()
    for shared in ("sublarr_job_queue_size", "sublarr_wanted_queue_size", "sublarr_queue_size",
                   "sublarr_database_size_bytes", "sublarr_redis_connected"):
        assert not samples(text, shared), f"{shared}: shared state is the web role's"
    assert samples(text, "sublarr_memory_usage_bytes"), "per-process state stays"
    output = (tmp_path / "worker.log").read_text()
    assert "Traceback" not in output, output[-3000:]


def test_otlp_mode_long_job_never_exports_from_the_work_horse(fresh_otel_collector, redis_url, tmp_path):
    collector = fresh_otel_collector
    service = "sublarr-worker-long"
    env = worker_env(tmp_path, redis_url, OTEL_METRICS_EXPORTER="otlp", OTEL_SERVICE_NAME=service,
                     OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=collector.otlp_http_endpoint + "/v1/metrics")
    job_id = seed_job(env["SUBLARR_DATABASE_URL"])
    enqueue_long_job(redis_url, job_id)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "refapp.worker", "--burst"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert time.monotonic() - started > LONG_JOB_SECONDS
    for problem in ("Traceback", "MetricsTimeoutError", "can't create new thread"):
        assert problem not in result.stderr, result.stderr[-3000:]

    def arrived():
        text = collector.scrape()
        return text if samples(text, "sublarr_jobs_total", job=service) else None
    text = wait_for(arrived, timeout=30, interval=0.5, what="the worker's final push")
    assert_counted_once(text, job=service)
    instances = {labels["instance"] for labels, _ in samples(text, "sublarr_info", job=service)}
    every_instance = set(re.findall(r'instance="([^"]+)"', text))
    assert len(instances) == 1 and every_instance == instances, \
        f"one process, one instance; a work-horse exported as its own: {every_instance}"
    assert not samples(text, "sublarr_job_queue_size", job=service)


def test_web_and_worker_in_one_redis_report_shared_state_once(redis_url, tmp_path, monkeypatch):
    """In-process: the web app reports the queue; the worker built from create_app() does not."""
    from refapp import Config, create_app
    from refapp.worker import _worker_class
    from rq import Queue

    env = worker_env(tmp_path, redis_url)
    for key in ("SUBLARR_DATABASE_URL", "SUBLARR_REDIS_URL", "SUBLARR_DATA_DIR"):
        monkeypatch.setenv(key, env[key])
    web = create_app(Config.from_env(env))
    worker_app = create_app(Config.from_env(env))  # the worker process's own create_app()
    try:
        web.job_queue.enqueue(__import__("refapp.jobs", fromlist=["sleep_for"]).sleep_for, 0)
        connection = redis.Redis.from_url(redis_url)
        _worker_class(False)([Queue("sublarr", connection=connection)], connection=connection, app=worker_app)
        web_telemetry, worker_telemetry = (a.extensions["sublarr_telemetry"] for a in (web, worker_app))
        assert (web_telemetry.role, worker_telemetry.role) == ("web", "worker")
        web_text = _scrape(web)
        worker_text = _scrape(worker_app)
    finally:
        for app in (web, worker_app):
            app.extensions["sublarr_telemetry"].shutdown()
    assert sample_value(web_text, "sublarr_queue_size", {"backend": "rq"}) == 1
    assert sample_value(web_text, "sublarr_redis_connected") == 1
    assert sample_value(worker_text, "sublarr_queue_size", {"backend": "rq"}) is None
    assert sample_value(worker_text, "sublarr_redis_connected") is None
    assert sample_value(worker_text, "sublarr_telemetry_source_up", {"source": "queue"}) is None


def _scrape(app):
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _refapp_version():
    from refapp import __version__
    return __version__
