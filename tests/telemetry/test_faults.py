"""Faults against real servers: Redis killed, PostgreSQL restarted, a hung
source, and concurrent requests through a real threaded server. None may
surface an exception in a request, lose a count, or stall a scrape."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from flask import Flask
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from harness.support import rss_bytes, sample_value, scrape, wait_for
from telemetry import Settings, StateTargets, Telemetry

JOBS = {"method": "GET", "endpoint": "/api/v1/jobs", "status": "200"}


def refapp_with(env, tmp_path):
    from refapp import Config, create_app
    base = {"SUBLARR_DATA_DIR": str(tmp_path), "SUBLARR_SIM_LATENCY_SCALE": "0", "SUBLARR_SIM_FAILURE_RATE": "0"}
    return create_app(Config.from_env({**base, **env}))


def timed_scrape(client):
    started = time.monotonic()
    text = scrape(client)
    return text, time.monotonic() - started


def force_fresh(app, *sources):
    for name in sources:
        app.extensions["sublarr_telemetry"].pipeline.callbacks.sources[name]._checked_at = None


def test_redis_killed_and_back(redis_server, redis_url, tmp_path):
    app = refapp_with({"SUBLARR_REDIS_URL": redis_url}, tmp_path)
    client = app.test_client()
    try:
        client.get("/api/v1/series/1")
        assert sample_value(scrape(client), "sublarr_redis_connected") == 1
        redis_server.stop()
        for _ in range(20):
            assert client.get("/api/v1/jobs").status_code == 200  # routes that do not need Redis keep serving
        force_fresh(app, "redis", "cache", "queue")
        text, elapsed = timed_scrape(client)
        assert elapsed < 3, elapsed
        assert sample_value(text, "sublarr_redis_connected") == 0
        assert sample_value(text, "sublarr_http_requests_total", JOBS) == 20
        assert sample_value(text, "sublarr_telemetry_source_up", {"source": "redis"}) == 0
        redis_server.start()
        wait_for(lambda: (force_fresh(app, "redis"), sample_value(scrape(client), "sublarr_redis_connected"))[1] == 1,
                 timeout=15, what="Redis seen again")
    finally:
        redis_server.ensure_running()
        app.extensions["sublarr_telemetry"].shutdown()
        app.db_engine.dispose()


def test_postgres_restarted_mid_run(postgres_server, postgres_url, tmp_path):
    app = refapp_with({"SUBLARR_DATABASE_URL": postgres_url}, tmp_path)
    client = app.test_client()
    served = 0
    try:
        for _ in range(10):
            assert client.get("/api/v1/jobs").status_code == 200
            served += 1
        database = make_url(postgres_url).database
        size = int(postgres_server.sql("SELECT pg_database_size(current_database())", database=database))
        assert sample_value(scrape(client), "sublarr_database_size_bytes") == pytest.approx(size, rel=0.1)
        postgres_server.stop()
        force_fresh(app, "database")
        text, elapsed = timed_scrape(client)
        assert elapsed < 3, elapsed
        assert sample_value(text, "sublarr_http_requests_total", JOBS) == served
        assert sample_value(text, "sublarr_telemetry_source_up", {"source": "database"}) == 0
        assert sample_value(text, "sublarr_memory_usage_bytes") == pytest.approx(rss_bytes(), rel=0.25)
        postgres_server.start()
        for _ in range(10):  # pool_pre_ping replaces the dead connections
            assert client.get("/api/v1/jobs").status_code == 200
            served += 1
        force_fresh(app, "database")
        text = scrape(client)
        assert sample_value(text, "sublarr_http_requests_total", JOBS) == served
        assert sample_value(text, "sublarr_telemetry_source_up", {"source": "database"}) == 1
        size = int(postgres_server.sql("SELECT pg_database_size(current_database())", database=database))
        assert sample_value(text, "sublarr_database_size_bytes") == pytest.approx(size, rel=0.1)
    finally:
        postgres_server.ensure_running()
        app.extensions["sublarr_telemetry"].shutdown()
        app.db_engine.dispose()


class HangingCache:
    def __init__(self):
        self.release = threading.Event()

    def get_stats(self):
        self.release.wait(30)
        return {"backend": "memory", "hits": 1, "misses": 1, "size": 1}


def test_a_hanging_callback_never_stalls_the_scrape():
    cache = HangingCache()
    app = Flask("hang")
    app.get("/hello")(lambda: "hi")
    telemetry = Telemetry(settings=Settings(source_timeout=0.5), targets=StateTargets(cache=lambda: cache)).init_app(app)
    client = app.test_client()
    try:
        client.get("/hello")
        timings = []
        for _ in range(3):
            text, elapsed = timed_scrape(client)
            timings.append(elapsed)
        assert timings[0] < 2 and max(timings[1:]) < 0.5, timings
        assert "sublarr_cache_hits_total" not in text
        assert sample_value(text, "sublarr_http_requests_total",
                            {"method": "GET", "endpoint": "/hello", "status": "200"}) == 1
        assert sample_value(text, "sublarr_telemetry_source_up", {"source": "cache"}) == 0
        cache.release.set()
        cache_source = telemetry.pipeline.callbacks.sources["cache"]
        wait_for(lambda: cache_source.get() is not None and cache_source.health.up, timeout=5,
                 what="the cache source back once the backend answers")
    finally:
        cache.release.set()
        telemetry.shutdown()


def test_eight_threads_through_a_real_server_count_exactly(tmp_path):
    app = Flask("threads")
    app.add_url_rule("/api/v1/jobs/<int:job_id>", "job", lambda job_id: {"id": job_id})
    telemetry = Telemetry(settings=Settings()).init_app(app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    per_thread = 150
    try:
        def worker(n):
            with requests.Session() as session:
                return [session.get(f"{base}/api/v1/jobs/{n * 1000 + i}", timeout=10).status_code
                        for i in range(per_thread)]
        with ThreadPoolExecutor(8) as pool:
            results = [code for batch in pool.map(worker, range(8)) for code in batch]
        assert results == [200] * (8 * per_thread)
        text = requests.get(base + "/metrics", timeout=10).text
        labels = {"method": "GET", "endpoint": "/api/v1/jobs/<int:job_id>", "status": "200"}
        assert sample_value(text, "sublarr_http_requests_total", labels) == 8 * per_thread
        assert sample_value(text, "sublarr_http_request_duration_seconds_count", labels) == 8 * per_thread
        assert sample_value(text, "sublarr_http_requests_in_progress") == 0
    finally:
        server.shutdown()
        telemetry.shutdown()
