"""RQ workers (forking and simple) count what their jobs recorded exactly once.

The worker runs in this process (burst mode) against a real Redis; with the
forking Worker every job runs in a forked work-horse that exits with os._exit.
The worker's own Prometheus registry is read directly here; the OTLP path
through the real collector is tested in test_otlp_collector.py.
"""
import pytest
import redis
from prometheus_client import generate_latest
from rq import Queue

from harness.both_paths import enqueue_translations
from harness.support import label_sets, sample_value
from telemetry import Settings
from telemetry.rq_worker import SimpleWorker, Worker, WorkerTelemetry

N_TRANSLATIONS = 7
N_FAILING = 3


@pytest.fixture
def database(tmp_path, monkeypatch):
    from refapp.models import init_db, make_engine
    url = f"sqlite:///{tmp_path}/worker.db"
    engine = make_engine(url)
    init_db(engine)
    monkeypatch.setenv("SUBLARR_DATABASE_URL", url)
    monkeypatch.setenv("SUBLARR_SIM_LATENCY_SCALE", "0")
    monkeypatch.setenv("SUBLARR_SIM_FAILURE_RATE", "0")
    monkeypatch.setenv("SUBLARR_DATA_DIR", str(tmp_path))
    yield engine
    engine.dispose()


def enqueue_jobs(engine, queue):
    from refapp import jobs

    enqueue_translations(engine, queue, N_TRANSLATIONS, fmt="ass")
    for _ in range(N_FAILING):
        queue.enqueue(jobs.always_fails)


@pytest.mark.parametrize("worker_class", [Worker, SimpleWorker], ids=["forking", "simple"])
def test_job_metrics_are_counted_exactly_once(worker_class, database, redis_url):
    from refapp.jobs import JOB_FUNCTIONS
    connection = redis.Redis.from_url(redis_url)
    queue = Queue("sublarr", connection=connection)
    enqueue_jobs(database, queue)
    telemetry = WorkerTelemetry(Settings(exporters=("prometheus",)), job_functions=JOB_FUNCTIONS,
                                providers=("opensubtitles",))
    try:
        worker = worker_class([queue], connection=connection, telemetry=telemetry)
        worker.work(burst=True)
        text = generate_latest(telemetry.pipeline.registry).decode()
    finally:
        telemetry.shutdown()

    ok = {"queue": "sublarr", "function": "refapp.jobs.run_translation", "status": "finished"}
    bad = {"queue": "sublarr", "function": "refapp.jobs.always_fails", "status": "failed"}
    assert sample_value(text, "sublarr_jobs_total", ok) == N_TRANSLATIONS
    assert sample_value(text, "sublarr_jobs_total", bad) == N_FAILING
    assert sample_value(text, "sublarr_job_duration_seconds_count", ok) == N_TRANSLATIONS
    assert label_sets(text, "sublarr_jobs_total") == {frozenset(ok.items()), frozenset(bad.items())}
    assert sample_value(text, "sublarr_translation_total", {"status": "success", "format": "ass"}) == N_TRANSLATIONS
    assert sample_value(text, "sublarr_translation_duration_seconds_count") == N_TRANSLATIONS
    # Each translation reads its row and updates it at least twice (running, then done).
    assert sample_value(text, "sublarr_db_queries_total", {"operation": "update"}) >= 2 * N_TRANSLATIONS
    assert sample_value(text, "sublarr_db_queries_total", {"operation": "select"}) >= N_TRANSLATIONS
    assert "sublarr_http_requests_total{" not in text
