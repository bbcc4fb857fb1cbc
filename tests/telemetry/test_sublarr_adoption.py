"""Adoption in an app built the way Sublarr v0.33 is, with only the documented lines.

The app below has Sublarr's shapes: ``backend/`` with ``app.py``-style factory,
``version.py`` reading ``VERSION``, a ``db`` package with
``db.jobs.get_pending_job_count`` and ``db.wanted.get_wanted_summary``, a
``metrics.py`` that is the one-line drop-in, Flask-SQLAlchemy with a ``jobs``
table, the provider manager in ``app.extensions["provider_manager"]`` with
private ``_circuit_breakers``, ``/api/v1/metrics`` behind ``X-Api-Key`` (or
``?apikey=``) serving ``generate_metrics()``, and a single-page-app catch-all.
No telemetry setting is set: what Sublarr's own metrics module reported must
come out anyway.
"""
import sys
import textwrap

import pytest
from flask import Flask, jsonify, request

from harness import support
from harness.support import catalog_label_problems, parse, sample_value, samples, wait_for
from telemetry import discovery

API_KEY = "s3cret-key"
HEADERS = {"X-Api-Key": API_KEY}
VERSION = "0.33.0-beta"

BACKEND_FILES = {
    "VERSION": VERSION + "\n",
    "version.py": """
        from pathlib import Path
        __version__ = Path(__file__).with_name("VERSION").read_text().strip()
    """,
    "extensions.py": """
        from flask_sqlalchemy import SQLAlchemy
        db = SQLAlchemy()
    """,
    "db/__init__.py": "",
    "db/models.py": """
        from extensions import db

        class Job(db.Model):
            __tablename__ = "jobs"
            id = db.Column(db.Integer, primary_key=True)
            fmt = db.Column(db.String(8))
            status = db.Column(db.String(16), default="queued")

        class WantedItem(db.Model):
            __tablename__ = "wanted_items"
            id = db.Column(db.Integer, primary_key=True)
            status = db.Column(db.String(16), default="wanted")
    """,
    "db/jobs.py": """
        from extensions import db
        from db.models import Job

        def get_pending_job_count():
            return db.session.query(Job).filter(Job.status == "queued").count()
    """,
    "db/wanted.py": """
        from extensions import db
        from db.models import WantedItem

        def get_wanted_summary():
            rows = db.session.query(WantedItem.status, db.func.count()).group_by(WantedItem.status).all()
            summary = {status: count for status, count in rows}
            return {"total": sum(summary.values()), "wanted": summary.get("wanted", 0)}
    """,
    "metrics.py": "from telemetry.sublarr_metrics import *  # noqa: F401,F403\n",
}


@pytest.fixture
def backend(tmp_path, monkeypatch):
    """Sublarr's backend/ directory on sys.path; its volumes /config (present) and /media (absent)."""
    root = tmp_path / "backend"
    for name, text in BACKEND_FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    config_volume = tmp_path / "config"
    config_volume.mkdir()
    monkeypatch.setattr(discovery, "DEFAULT_DISK_MOUNTS",
                        (("config", str(config_volume)), ("media", str(tmp_path / "media"))))
    monkeypatch.delenv("SUBLARR_METRICS_PATH", raising=False)  # no telemetry setting at all
    monkeypatch.syspath_prepend(str(root))
    before = set(sys.modules)
    yield root
    for name in set(sys.modules) - before:  # extensions, db.*, metrics, version
        if name.split(".")[0] in ("extensions", "db", "metrics", "version"):
            del sys.modules[name]


def create_app(root, data_dir):
    """Sublarr's create_app, reduced to the shapes telemetry meets."""
    import metrics  # Sublarr's backend/metrics.py, now the drop-in
    from db import jobs as _jobs, models, wanted as _wanted  # noqa: F401 (imported by Sublarr's routes)
    from extensions import db
    from refapp.cache import MemoryCache
    from refapp.config import Config
    from refapp.jobqueue import MemoryJobQueue
    from refapp.providers import ProviderManager

    app = Flask("app", root_path=str(root))
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{data_dir}/sublarr.db"
    db.init_app(app)
    with app.app_context():
        db.create_all()
    app.cache_backend = MemoryCache()
    app.job_queue = MemoryJobQueue(app, workers=1)
    app.extensions["provider_manager"] = ProviderManager(
        Config.from_env({}, data_dir=str(data_dir), latency_scale=0.0, failure_rate=0.0))

    @app.before_request
    def require_api_key():
        if request.path.startswith("/api/"):
            given = request.headers.get("X-Api-Key") or request.args.get("apikey")
            if given != API_KEY:
                return jsonify(error="unauthorized"), 401

    @app.get("/api/v1/metrics")
    def api_metrics():
        body, content_type = metrics.generate_metrics("/config/sublarr.db")
        return body, 200, {"Content-Type": content_type}

    @app.post("/api/v1/translate")
    def enqueue():
        job = models.Job(fmt="ass")
        db.session.add(job)
        db.session.add(models.WantedItem())
        db.session.commit()
        metrics.record_provider_search("opensubtitles", "success")
        metrics.record_http_request("POST", "/api/v1/translate", 202, 0.01)  # old callers: now a no-op
        return {"id": job.id}, 202

    @app.get("/", defaults={"path": ""})
    @app.get("/<path:path>")
    def spa(path):
        return "<!doctype html><div id=app></div>", 200, {"Content-Type": "text/html"}

    # --- the adoption: the one documented line, last in create_app ---
    from telemetry import init_telemetry
    init_telemetry(app)
    return app


@pytest.fixture
def sublarr_app(backend, tmp_path):
    app = create_app(backend, tmp_path)
    yield app
    app.extensions["sublarr_telemetry"].shutdown()
    app.job_queue.shutdown(wait=True)


def scrape(client, headers=HEADERS, **request):
    """Sublarr's /api/v1/metrics, with the API key in the header unless given otherwise."""
    return support.scrape(client, "/api/v1/metrics", headers=headers, **request)


def test_nothing_sublarr_had_is_lost(sublarr_app, tmp_path):
    app = sublarr_app
    client = app.test_client()
    for _ in range(3):
        client.post("/api/v1/translate", headers=HEADERS)
    with app.app_context():
        from db.jobs import get_pending_job_count
        from db.wanted import get_wanted_summary
        pending, wanted = get_pending_job_count(), get_wanted_summary()["wanted"]
    assert (pending, wanted) == (3, 3)
    breaker = app.extensions["provider_manager"]._circuit_breakers["subdl"]
    for _ in range(breaker.failure_threshold):
        breaker.record_failure()

    def all_sources_up():  # a first read may be late on a busy machine; it is retried
        text = scrape(client)
        down = [labels["source"] for labels, up in samples(text, "sublarr_telemetry_source_up") if up != 1]
        return text if not down else None
    text = wait_for(all_sources_up, timeout=10, interval=0.5, what="every state source up")
    assert sample_value(text, "sublarr_circuit_breaker_state", {"provider": "subdl"}) == 1
    assert sample_value(text, "sublarr_circuit_breaker_state", {"provider": "opensubtitles"}) == 0
    assert sample_value(text, "sublarr_job_queue_size") == pending
    assert sample_value(text, "sublarr_wanted_queue_size") == wanted
    assert {labels["mount"] for labels, _ in samples(text, "sublarr_disk_usage_percent")} == {"config"}
    assert sample_value(text, "sublarr_info", {"version": VERSION}) == 1
    assert {labels["source"] for labels, _ in samples(text, "sublarr_telemetry_source_up")} >= {
        "breakers", "job_queue", "wanted", "disk", "info", "database", "queue", "cache"}
    assert sample_value(text, "sublarr_http_requests_total",
                        {"method": "POST", "endpoint": "/api/v1/translate", "status": "202"}) == 3
    assert catalog_label_problems(text, {"endpoint": {r.rule for r in app.url_map.iter_rules()} | {"<unmatched>"},
                                         "provider": {"opensubtitles", "podnapisi", "subdl", "animetosho"},
                                         "mount": {"config"}}) == []


def test_telemetrys_own_state_reads_are_not_app_queries(sublarr_app):
    client = sublarr_app.test_client()
    client.post("/api/v1/translate", headers=HEADERS)
    first = scrape(client)
    telemetry = sublarr_app.extensions["sublarr_telemetry"]
    for source in telemetry.pipeline.callbacks.sources.values():  # make every source read again
        source._checked_at = None
    second = scrape(client)
    assert sample_value(second, "sublarr_job_queue_size") == 1
    for operation in ("select", "insert"):
        labels = {"operation": operation}
        assert sample_value(second, "sublarr_db_queries_total", labels) == \
            sample_value(first, "sublarr_db_queries_total", labels), operation


def test_no_second_open_door_and_the_scrape_is_not_a_request(sublarr_app):
    client = sublarr_app.test_client()
    assert sublarr_app.extensions["sublarr_telemetry"].metrics_path is None
    for path in ("/metrics", "/api/v1/metrics"):
        response = client.get(path)
        assert b"sublarr_" not in response.data, f"{path} answers the exposition without the API key"
    assert client.get("/metrics").content_type.startswith("text/html"), "/metrics stays the SPA's"
    assert client.get("/api/v1/metrics").status_code == 401
    assert telemetry_routes(sublarr_app) == [], "telemetry added no route"
    for _ in range(3):
        text = scrape(client)
    text = scrape(client, headers={}, query_string={"apikey": API_KEY})  # the key as ?apikey= only
    assert sample_value(text, "sublarr_http_requests_in_progress") == 0
    endpoints = {labels.get("endpoint") for labels, _ in samples(text, "sublarr_http_requests_total")}
    assert "/api/v1/metrics" not in endpoints, "scrapes are not HTTP requests"
    assert "/<path:path>" in endpoints, "the SPA answered /metrics and is measured like any route"


def telemetry_routes(app):
    return [rule.rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith("sublarr_telemetry")]


def test_a_failing_state_source_is_visible_in_metrics(sublarr_app):
    from extensions import db
    client = sublarr_app.test_client()
    with sublarr_app.app_context():
        db.session.execute(db.text("DROP TABLE jobs"))
        db.session.commit()
    manager = sublarr_app.extensions["provider_manager"]
    del manager._circuit_breakers  # a Sublarr release that renamed it

    text = scrape(client)
    for source in ("job_queue", "breakers"):
        assert sample_value(text, "sublarr_telemetry_source_up", {"source": source}) == 0, source
        assert sample_value(text, "sublarr_telemetry_source_errors_total", {"source": source}) == 1, source
    assert sample_value(text, "sublarr_telemetry_source_up", {"source": "wanted"}) == 1
    assert sample_value(text, "sublarr_job_queue_size") is None
    assert sample_value(text, "sublarr_wanted_queue_size") == 0


def test_old_module_api_keeps_working(sublarr_app):
    import metrics
    assert metrics.METRICS_AVAILABLE is True
    for collect in (metrics.collect_system_metrics, metrics.collect_queue_metrics,
                    metrics.collect_circuit_breaker_metrics, metrics.collect_db_pool_metrics,
                    metrics.collect_cache_metrics, metrics.collect_redis_metrics,
                    metrics.collect_queue_job_metrics):
        assert collect() is None
    metrics.collect_database_metrics("/config/sublarr.db")
    metrics.record_provider_download("podnapisi", "srt")
    metrics.record_db_query("select", 0.01)
    body, content_type = metrics.generate_metrics("/config/sublarr.db")
    assert content_type.startswith("text/plain; version=0.0.4")
    text = body.decode()
    assert sample_value(text, "sublarr_provider_download_total", {"provider": "podnapisi", "format": "srt"}) == 1
    assert parse(text)["sublarr_info"] == [("sublarr_info", {"version": VERSION}, 1.0)]


def test_a_metrics_route_registered_after_adoption_still_leaves_one_door(monkeypatch):
    """init_telemetry(app) called before the app's own route: /metrics turns itself off."""
    from telemetry import init_telemetry
    monkeypatch.delenv("SUBLARR_METRICS_PATH", raising=False)
    app = Flask("late")
    telemetry = init_telemetry(app)
    app.get("/api/v1/metrics")(lambda: "the app's")
    client = app.test_client()
    assert client.get("/metrics").status_code == 404
    assert client.get("/api/v1/metrics").data == b"the app's"
    telemetry.shutdown()


def test_reference_app_has_sublarrs_door(tmp_path, monkeypatch):
    """The reference app, adopted with no telemetry setting: only its API-key route serves."""
    from refapp import Config, create_app
    monkeypatch.delenv("SUBLARR_METRICS_PATH", raising=False)
    app = create_app(Config.from_env({"SUBLARR_API_KEY": API_KEY}, data_dir=str(tmp_path), latency_scale=0.0,
                                     failure_rate=0.0))
    client = app.test_client()
    try:
        client.get("/api/v1/health")
        assert client.get("/metrics").content_type.startswith("text/html")
        assert client.get("/api/v1/metrics").status_code == 401
        assert client.get("/api/v1/jobs").status_code == 401
        text = client.get("/api/v1/metrics", query_string={"apikey": API_KEY}).get_data(as_text=True)
        assert sample_value(text, "sublarr_info", {"version": __import__("refapp").__version__}) == 1
        assert sample_value(text, "sublarr_http_requests_total",
                            {"method": "GET", "endpoint": "/api/v1/jobs", "status": "401"}) == 1
        assert "/api/v1/metrics" not in text
        assert sample_value(text, "sublarr_circuit_breaker_state", {"provider": "subdl"}) == 0
        assert sample_value(text, "sublarr_job_queue_size") == 0
    finally:
        app.extensions["sublarr_telemetry"].shutdown()
        app.job_queue.shutdown(wait=True)


def test_any_route_serving_generate_metrics_is_not_an_http_request(monkeypatch):
    """A route discovery cannot recognise by its path still marks itself as the scrape."""
    from telemetry import init_telemetry, sublarr_metrics
    monkeypatch.delenv("SUBLARR_METRICS_PATH", raising=False)
    app = Flask("oddly_named")

    @app.get("/api/v1/prom")
    def prom():
        body, content_type = sublarr_metrics.generate_metrics()
        return body, 200, {"Content-Type": content_type}
    app.get("/api/v1/ping")(lambda: "pong")
    telemetry = init_telemetry(app)
    client = app.test_client()
    client.get("/api/v1/ping")
    client.get("/api/v1/prom")
    text = client.get("/api/v1/prom").get_data(as_text=True)
    telemetry.shutdown()
    assert sample_value(text, "sublarr_http_requests_in_progress") == 0
    endpoints = {labels.get("endpoint") for labels, _ in samples(text, "sublarr_http_requests_total")}
    assert endpoints == {"/api/v1/ping"}


def test_a_broken_count_query_is_visible(tmp_path):
    """Without the host's count functions the fallback SQL runs; one that fails marks its source down."""
    from sqlalchemy import create_engine

    from telemetry import Settings, init_telemetry
    app = Flask("counts")
    app.db_engine = create_engine(f"sqlite:///{tmp_path}/counts.db")
    with app.db_engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE wanted_items (id INTEGER PRIMARY KEY, status TEXT)")
        connection.exec_driver_sql("INSERT INTO wanted_items (status) VALUES ('wanted'), ('found')")
    telemetry = init_telemetry(app, settings=Settings(), count_queries={  # as monitoring/README.md shows
        "sublarr_job_queue_size": "SELECT count(*) FROM no_such_table",
        "sublarr_wanted_queue_size": "SELECT count(*) FROM wanted_items WHERE status = 'wanted'"})
    try:
        text = app.test_client().get("/metrics").get_data(as_text=True)
    finally:
        telemetry.shutdown()
        app.db_engine.dispose()
    assert sample_value(text, "sublarr_telemetry_source_up", {"source": "job_queue"}) == 0
    assert sample_value(text, "sublarr_telemetry_source_errors_total", {"source": "job_queue"}) == 1
    assert sample_value(text, "sublarr_job_queue_size") is None
    assert sample_value(text, "sublarr_wanted_queue_size") == 1
    assert sample_value(text, "sublarr_telemetry_source_up", {"source": "wanted"}) == 1
