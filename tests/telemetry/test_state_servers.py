"""Every non-HTTP family from real PostgreSQL, Redis cache and RQ with a worker process.

Then Redis is frozen (SIGSTOP: connections queue, nothing answers) and the
scrape must still come back fast with sublarr_redis_connected 0.
"""
import os
import subprocess
import sys
import time

import pytest
from sqlalchemy import text

from harness.support import REPO, catalog_label_problems, parse, sample_value, scrape, wait_for
from telemetry import catalog

NON_HTTP = ("database", "cache", "redis", "queue", "process")
FAILING_JOBS = 105
SIM_SEED = "1"  # unseeded, all four simulated providers return no result for a search once in 256 runs


def present(out):
    families = parse(out)
    return {f.name for f in catalog.FAMILIES
            if (f.name[:-len("_total")] if f.name.endswith("_total") else f.name) in families}


@pytest.fixture
def stack(tmp_path, postgres_url, redis_url):
    from refapp import Config, create_app
    env = {"SUBLARR_DATABASE_URL": postgres_url, "SUBLARR_REDIS_URL": redis_url,
           "SUBLARR_SIM_LATENCY_SCALE": "0", "SUBLARR_SIM_FAILURE_RATE": "0",
           "SUBLARR_DATA_DIR": str(tmp_path), "SUBLARR_SIM_SEED": SIM_SEED}
    app = create_app(Config.from_env(env))
    worker_env = dict(os.environ, **env, PYTHONPATH=str(REPO / "backend"))
    log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen([sys.executable, "-m", "refapp.worker"], env=worker_env,
                              stdout=log, stderr=subprocess.STDOUT, text=True)
    app.worker_log = tmp_path / "worker.log"
    yield app
    worker.terminate()
    try:
        worker.wait(15)
    except subprocess.TimeoutExpired:
        worker.kill()
    app.extensions["sublarr_telemetry"].shutdown()
    app.db_engine.dispose()


def test_every_non_http_family_on_postgres_redis_rq(stack, tmp_path, redis_server):
    from refapp import jobs
    app = stack
    client = app.test_client()
    for i in range(3):
        client.post("/api/v1/wanted", json={"title": f"Show {i}", "language": "de"})
    first, again = client.post("/api/v1/wanted/1/search"), client.post("/api/v1/wanted/1/search")
    assert first.json["results"] and not first.json["cached"], "the search must find results: item 1 is then found"
    assert again.json["cached"]
    for i in range(6):
        client.get(f"/api/v1/series/{i % 2}")
    for i in range(5):
        assert client.post("/api/v1/jobs", json={"file_path": f"/m/{i}.ass", "source_lang": "en",
                                                 "target_lang": "de", "fmt": "ass"}).status_code == 202
    for _ in range(FAILING_JOBS):
        app.job_queue.enqueue(jobs.always_fails)
    try:
        wait_for(lambda: app.job_queue.count_failed() >= FAILING_JOBS and app.job_queue.count_queued() == 0
                 and app.job_queue.count_active() == 0, timeout=90, interval=0.5,
                 what="the RQ worker to run every job")
    except AssertionError:
        raise AssertionError(f"queued={app.job_queue.count_queued()} active={app.job_queue.count_active()} "
                             f"failed={app.job_queue.count_failed()}\n" + app.worker_log.read_text()[-3000:])

    out = scrape(client)
    missing = {f.name for f in catalog.FAMILIES if f.group in NON_HTTP} - present(out)
    assert missing == set(), sorted(missing)

    assert sample_value(out, "sublarr_db_backend_info", {"dialect": "postgresql"}) == 1
    assert sample_value(out, "sublarr_db_pool_size") == 5
    assert sample_value(out, "sublarr_db_pool_checked_out") == 0
    with app.db_engine.connect() as connection:
        size = connection.execute(text("SELECT pg_database_size(current_database())")).scalar()
        wanted = connection.execute(text("SELECT count(*) FROM wanted_items WHERE status = 'wanted'")).scalar()
    assert sample_value(out, "sublarr_database_size_bytes") == pytest.approx(size, rel=0.1)
    assert sample_value(out, "sublarr_wanted_queue_size") == wanted == 2
    assert sample_value(out, "sublarr_job_queue_size") == 0
    assert sample_value(out, "sublarr_db_queries_total", {"operation": "insert"}) >= 8

    stats = app.cache_backend.get_stats()
    assert stats["backend"] == "redis" and stats["hits"] > 0 and stats["misses"] > 0
    assert sample_value(out, "sublarr_cache_hits_total", {"backend": "redis"}) == stats["hits"]
    assert sample_value(out, "sublarr_cache_misses_total", {"backend": "redis"}) == stats["misses"]
    assert sample_value(out, "sublarr_cache_size", {"backend": "redis"}) == stats["size"] > 0

    assert sample_value(out, "sublarr_redis_connected") == 1
    assert sample_value(out, "sublarr_redis_memory_used_bytes") > 100_000

    failed = app.job_queue.count_failed()
    assert failed >= FAILING_JOBS
    assert sample_value(out, "sublarr_queue_failed_jobs", {"backend": "rq"}) == failed
    assert sample_value(out, "sublarr_queue_size", {"backend": "rq"}) == 0
    assert sample_value(out, "sublarr_queue_active_jobs", {"backend": "rq"}) == 0
    assert sample_value(out, "sublarr_provider_search_total", {"provider": "podnapisi", "status": "success"}) == 1

    assert catalog_label_problems(out, {
        "endpoint": {r.rule for r in app.url_map.iter_rules()} | {"<unmatched>"},
        "provider": set(app.refapp_config.providers),
        "mount": {str(tmp_path)},
    }) == []

    # Freeze Redis: it still accepts TCP connections but never answers.
    redis_server.pause()
    try:
        timings = []
        for _ in range(3):
            started = time.monotonic()
            frozen = scrape(client)
            timings.append(time.monotonic() - started)
            for source in ("redis", "cache", "queue"):
                app.extensions["sublarr_telemetry"].pipeline.callbacks.sources[source]._checked_at = None
        assert max(timings) < 3.0, timings
        assert sample_value(frozen, "sublarr_redis_connected") == 0
        still = {f.name for f in catalog.FAMILIES if f.group in ("database", "cache", "queue", "process", "http")}
        assert still - present(frozen) == set(), "last good cache/queue readings are served while recent"
        assert sample_value(frozen, "sublarr_telemetry_source_up", {"source": "redis"}) == 0
    finally:
        redis_server.resume()
    wait_for(lambda: sample_value(scrape(client), "sublarr_redis_connected") == 1, timeout=15,
             what="Redis to be seen again after resume")
