"""Every non-HTTP family from real state: SQLite, memory cache, memory queue.

Also: pools without a size, a raising source, and a Redis that never answers.
"""
import logging
import os
import socket
import time

import pytest
from flask import Flask
from sqlalchemy import create_engine, text

from harness.support import catalog_label_problems, label_sets, parse, rss_bytes, sample_value, scrape, wait_for
from telemetry import Settings, StateTargets, Telemetry, catalog

NON_HTTP_GROUPS = ("database", "cache", "queue", "subtitles", "process")


def present(text):
    families = parse(text)
    return {f.name for f in catalog.FAMILIES
            if (f.name[:-len("_total")] if f.name.endswith("_total") else f.name) in families}


@pytest.fixture
def refapp(tmp_path):
    from refapp import Config, create_app
    config = Config.from_env({}, data_dir=str(tmp_path), latency_scale=0.0, failure_rate=0.0, seed=11)
    app = create_app(config)
    yield app
    app.extensions["sublarr_telemetry"].shutdown()
    app.job_queue.shutdown(wait=True)
    app.db_engine.dispose()


def drive_traffic(app, failing_jobs=150):
    from refapp import jobs
    from refapp.models import TranslationJob
    client = app.test_client()
    for i in range(4):
        client.post("/api/v1/wanted", json={"title": f"Show {i}", "language": "de"})
    for item in (1, 2):
        client.post(f"/api/v1/wanted/{item}/search")
        client.post(f"/api/v1/wanted/{item}/search")        # served from the cache
    for i in range(10):
        client.get(f"/api/v1/series/{i % 3}")
    for i in range(8):
        client.post("/api/v1/jobs", json={"file_path": f"/m/{i}.ass", "source_lang": "en",
                                          "target_lang": "de", "fmt": "ass"})
    client.post("/api/v1/providers/podnapisi/download", json={"id": "1", "fmt": "srt", "title": "Show"})
    for _ in range(failing_jobs):
        app.job_queue.enqueue(jobs.always_fails)
    with app.app_context():
        session = app.session_factory()
        session.add_all([TranslationJob(file_path=f"/m/p{i}.srt", source_lang="en", target_lang="fr",
                                        fmt="srt", status="pending") for i in range(3)])
        session.commit()
    breaker = app.extensions["provider_manager"]._circuit_breakers["subdl"]
    for _ in range(breaker.failure_threshold):
        breaker.record_failure()
    wait_for(lambda: app.job_queue.count_queued() == 0 and app.job_queue.count_active() == 0,
             timeout=30, what="the memory queue to drain")
    return client


def test_every_non_http_family_from_real_state(refapp, tmp_path):
    app = refapp
    client = drive_traffic(app)
    text = scrape(client)

    missing = {f.name for f in catalog.FAMILIES if f.group in NON_HTTP_GROUPS} - present(text)
    assert missing == set(), f"families absent: {sorted(missing)}"

    for operation in ("select", "insert", "update"):
        assert sample_value(text, "sublarr_db_queries_total", {"operation": operation}) > 0
        assert sample_value(text, "sublarr_db_query_duration_seconds_count", {"operation": operation}) == \
            sample_value(text, "sublarr_db_queries_total", {"operation": operation})
    assert sample_value(text, "sublarr_db_pool_size") == 5
    assert sample_value(text, "sublarr_db_pool_checked_out") == 0
    assert sample_value(text, "sublarr_db_pool_overflow") == app.db_engine.pool.overflow()
    assert sample_value(text, "sublarr_db_backend_info", {"dialect": "sqlite"}) == 1
    db_file = app.db_engine.url.database
    expected_size = os.path.getsize(db_file) + (os.path.getsize(db_file + "-wal") if os.path.exists(db_file + "-wal") else 0)
    assert sample_value(text, "sublarr_database_size_bytes") == pytest.approx(expected_size, rel=0.05)

    with app.db_engine.connect() as connection:
        pending = connection.execute(text_("SELECT count(*) FROM jobs WHERE status IN ('pending','queued')")).scalar()
        wanted = connection.execute(text_("SELECT count(*) FROM wanted_items WHERE status = 'wanted'")).scalar()
    assert sample_value(text, "sublarr_job_queue_size") == pending == 3  # the 3 rows added as pending
    assert wanted >= 2 and sample_value(text, "sublarr_wanted_queue_size") == wanted

    stats = app.cache_backend.get_stats()
    assert stats["hits"] > 0 and stats["misses"] > 0
    assert sample_value(text, "sublarr_cache_hits_total", {"backend": "memory"}) == stats["hits"]
    assert sample_value(text, "sublarr_cache_misses_total", {"backend": "memory"}) == stats["misses"]
    assert sample_value(text, "sublarr_cache_size", {"backend": "memory"}) == stats["size"] > 0

    assert sample_value(text, "sublarr_queue_failed_jobs", {"backend": "memory"}) == app.job_queue.count_failed() == 150
    assert sample_value(text, "sublarr_queue_size", {"backend": "memory"}) == 0
    assert sample_value(text, "sublarr_queue_active_jobs", {"backend": "memory"}) == 0

    assert sample_value(text, "sublarr_translation_total", {"status": "success", "format": "ass"}) == 8  # failure_rate 0
    assert label_sets(text, "sublarr_translation_total") == {frozenset({("status", "success"), ("format", "ass")})}
    assert sample_value(text, "sublarr_provider_search_total", {"provider": "opensubtitles", "status": "success"}) == 2
    assert sample_value(text, "sublarr_provider_download_total", {"provider": "podnapisi", "format": "srt"}) == 1
    assert sample_value(text, "sublarr_circuit_breaker_state", {"provider": "subdl"}) == 1
    assert sample_value(text, "sublarr_circuit_breaker_state", {"provider": "opensubtitles"}) == 0

    assert 0 < sample_value(text, "sublarr_cpu_usage_percent") < 100 * (os.cpu_count() or 1) + 1
    import psutil
    rss = psutil.Process().memory_info().rss
    assert sample_value(text, "sublarr_memory_usage_bytes") == pytest.approx(rss, rel=0.2)
    assert 0 < sample_value(text, "sublarr_disk_usage_percent", {"mount": str(tmp_path)}) <= 100
    assert sample_value(text, "sublarr_info", {"version": "0.1.0"}) == 1
    assert sample_value(text, "sublarr_redis_connected") is None, "no Redis configured: no Redis series"

    problems = catalog_label_problems(text, {
        "endpoint": {r.rule for r in app.url_map.iter_rules()} | {"<unmatched>"},
        "provider": set(app.refapp_config.providers),
        "mount": {str(tmp_path)},
    })
    assert problems == []


def text_(sql):
    return text(sql)


def test_breaker_state_is_read_without_changing_it(refapp):
    breaker = refapp.extensions["provider_manager"]._circuit_breakers["podnapisi"]
    for _ in range(breaker.failure_threshold):
        breaker.record_failure()
    before = dict(vars(breaker))
    client = refapp.test_client()
    for _ in range(3):
        text = scrape(client)
    assert sample_value(text, "sublarr_circuit_breaker_state", {"provider": "podnapisi"}) == 1
    assert dict(vars(breaker)) == before


def bare_app(**targets):
    app = Flask("bare")
    app.get("/hello")(lambda: "hi")
    telemetry = Telemetry(settings=Settings(), targets=StateTargets(**targets)).init_app(app)
    return app, telemetry


def test_init_telemetry_takes_the_targets_one_by_one_as_objects_or_getters(tmp_path):
    """The keywords adopters already write (``engine=db.engine``, ``breakers=mapping``,
    ``disk_paths=[...]``) become the typed StateTargets the state sources read."""
    from telemetry import init_telemetry

    engine = create_engine(f"sqlite:///{tmp_path}/k.db")
    breakers = {"podnapisi": type("Breaker", (), {"state": "open"})()}
    app = Flask("keywords")
    telemetry = init_telemetry(app, settings=Settings(), engine=engine, breakers=breakers,
                               cache=lambda: None, disk_paths=[str(tmp_path)], version="9.9")
    try:
        assert telemetry.targets.engine() is engine and telemetry.targets.breakers() is breakers
        assert telemetry.targets.disk_paths == (str(tmp_path),)
        families = parse(scrape(app.test_client()))
    finally:
        telemetry.shutdown()
        engine.dispose()
    assert families["sublarr_db_backend_info"] == [("sublarr_db_backend_info", {"dialect": "sqlite"}, 1.0)]
    assert families["sublarr_circuit_breaker_state"] == [
        ("sublarr_circuit_breaker_state", {"provider": "podnapisi"}, 1.0)]
    assert families["sublarr_info"] == [("sublarr_info", {"version": "9.9"}, 1.0)]
    assert [labels for _, labels, _ in families["sublarr_disk_usage_percent"]] == [{"mount": str(tmp_path)}]
    assert "sublarr_cache_hits" not in families  # the getter returned None: no cache, no series


def test_breaker_state_is_in_every_scrape_between_reads():
    """Scrapes closer together than the breakers' refresh still carry their state
    (a reading withheld before it was due for a refresh once blanked every other second)."""
    breakers = {"podnapisi": type("Breaker", (), {"state": "open"})()}
    app, telemetry = bare_app(breakers=lambda: breakers)
    client = app.test_client()
    try:
        states = []
        for _ in range(15):  # 1.5 s: three refresh periods
            states.append(sample_value(scrape(client), "sublarr_circuit_breaker_state", {"provider": "podnapisi"}))
            time.sleep(0.1)
    finally:
        telemetry.shutdown()
    assert states == [1] * 15


def test_targets_are_given_once():
    from telemetry import init_telemetry

    with pytest.raises(TypeError, match=r"takes targets= or redis_url=, not both"):
        init_telemetry(Flask("twice"), settings=Settings(), targets=StateTargets(), redis_url="redis://x")
    with pytest.raises(TypeError, match="unexpected keyword argument 'enigne'"):
        init_telemetry(Flask("typo"), settings=Settings(), enigne=None)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_pools_without_a_size_have_no_pool_series(url):
    engine = create_engine(url)
    app, telemetry = bare_app(engine=lambda: engine)
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    text_out = scrape(app.test_client())
    assert sample_value(text_out, "sublarr_db_backend_info", {"dialect": "sqlite"}) == 1
    assert sample_value(text_out, "sublarr_db_queries_total", {"operation": "select"}) == 1
    for name in ("sublarr_db_pool_size", "sublarr_db_pool_checked_out", "sublarr_db_pool_overflow"):
        assert name not in text_out
    telemetry.shutdown()


def test_telemetry_queries_are_not_counted_as_app_queries(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path}/x.db")
    app, telemetry = bare_app(engine=lambda: engine)
    client = app.test_client()
    for _ in range(3):
        out = scrape(client)
        telemetry.pipeline.callbacks.sources["database"]._checked_at = None
    assert sample_value(out, "sublarr_database_size_bytes") is not None  # the probe did run
    assert sample_value(out, "sublarr_db_queries_total", {"operation": "select"}) is None
    telemetry.shutdown()


def test_operations_are_classified():
    from telemetry.db_metrics import QueryMetrics
    queries = QueryMetrics()
    cases = {"SELECT 1": "select", "  select x": "select", "INSERT INTO t": "insert", "UPDATE t": "update",
             "DELETE FROM t": "delete", "WITH x AS (SELECT 1) SELECT 1": "other", "PRAGMA x": "other",
             "(SELECT 1) UNION (SELECT 2)": "select", "": "other"}
    assert {sql: queries.operation(sql) for sql in cases} == cases


class BrokenCache:
    def get_stats(self):
        raise ConnectionError("cache backend exploded")


def test_a_raising_source_loses_only_its_own_series(caplog, tmp_path):
    caplog.set_level(logging.WARNING)
    engine = create_engine(f"sqlite:///{tmp_path}/y.db")
    broken = BrokenCache()
    app, telemetry = bare_app(engine=lambda: engine, cache=lambda: broken)
    client = app.test_client()
    client.get("/hello")
    for _ in range(3):
        out = scrape(client)
        telemetry.pipeline.callbacks.sources["cache"]._checked_at = None  # force a fresh read each scrape
    assert "sublarr_cache_hits_total" not in out and "sublarr_cache_size" not in out
    assert sample_value(out, "sublarr_db_backend_info", {"dialect": "sqlite"}) == 1
    assert sample_value(out, "sublarr_http_requests_total", {"method": "GET", "endpoint": "/hello", "status": "200"}) == 1
    assert sample_value(out, "sublarr_memory_usage_bytes") == pytest.approx(rss_bytes(), rel=0.25)
    assert sample_value(out, "sublarr_telemetry_source_up", {"source": "cache"}) == 0
    assert sample_value(out, "sublarr_telemetry_source_up", {"source": "database"}) == 1
    assert sample_value(out, "sublarr_telemetry_source_errors_total", {"source": "cache"}) == 3
    logged = [r for r in caplog.records if "cache backend exploded" in r.getMessage()]
    assert len(logged) == 1
    telemetry.shutdown()


def test_a_redis_that_never_answers_does_not_stall_the_scrape(tmp_path):
    """A listening socket that never accepts: connects queue in the backlog, reads hang."""
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(128)
    port = blackhole.getsockname()[1]
    try:
        from refapp import Config, create_app
        config = Config.from_env({}, data_dir=str(tmp_path), latency_scale=0.0, failure_rate=0.0)
        app = create_app(config, telemetry=False)
        telemetry = Telemetry(settings=Settings(), targets=StateTargets(
            redis_url=f"redis://127.0.0.1:{port}/0", disk_paths=(str(tmp_path),))).init_app(app)
        client = drive_traffic(app, failing_jobs=5)
        for attempt in range(3):
            started = time.monotonic()
            out = scrape(client)
            elapsed = time.monotonic() - started
            assert elapsed < 3.0, f"scrape {attempt} took {elapsed:.1f}s"
            telemetry.pipeline.callbacks.sources["redis"]._checked_at = None
        assert sample_value(out, "sublarr_redis_connected") == 0
        assert "sublarr_redis_memory_used_bytes " not in out
        expected = {f.name for f in catalog.FAMILIES if f.group in NON_HTTP_GROUPS + ("http",)}
        assert expected - present(out) == set()
        assert sample_value(out, "sublarr_telemetry_source_up", {"source": "redis"}) == 0
        telemetry.shutdown()
        app.job_queue.shutdown(wait=True)
    finally:
        blackhole.close()


def test_the_redis_and_rq_queue_sources_make_one_probe_client_between_them(monkeypatch):
    """Both sources start together in their own threads: one client, never a second one left unclosed."""
    import threading

    from opentelemetry.sdk.metrics import MeterProvider

    from telemetry.state import callbacks, redis as redis_state

    made, real = [], redis_state.probe_client

    def slow_probe_client(url, timeout_seconds=0.5):
        time.sleep(0.05)  # widens the window in which a second thread finds no client yet
        client = real(url, timeout_seconds)
        made.append(client)
        return client

    monkeypatch.setattr(redis_state, "probe_client", slow_probe_client)
    layer = callbacks.CallbackLayer(MeterProvider().get_meter("probe-test"),
                                    StateTargets(redis_url="redis://127.0.0.1:1/0"))
    start, clients = threading.Barrier(4), []

    def first_read():
        start.wait()
        clients.append(layer._redis_probe())
    threads = [threading.Thread(target=first_read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    layer.close()
    assert len(made) == 1 and all(client is made[0] for client in clients)
