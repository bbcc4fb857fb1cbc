"""Adoption in an app built the way Sublarr is: Flask-SQLAlchemy, app attributes,
an API key on /api/, and the old metrics module's callers."""
import pytest
from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy

from support import catalog_label_problems, parse, sample_value, wait_for
from telemetry import catalog

API_KEY = "s3cret-key"
db = SQLAlchemy()


class TranslationJob(db.Model):
    __tablename__ = "translation_jobs"
    id = db.Column(db.Integer, primary_key=True)
    fmt = db.Column(db.String(8))
    status = db.Column(db.String(16), default="pending")


class WantedItem(db.Model):
    __tablename__ = "wanted_items"
    id = db.Column(db.Integer, primary_key=True)
    status = db.Column(db.String(16), default="wanted")


def translate(job_id):
    from telemetry import sublarr_metrics as metrics  # Sublarr: `import metrics`
    job = db.session.get(TranslationJob, job_id)
    job.status = "success"
    db.session.commit()
    metrics.record_translation("success", job.fmt, 3.0)


def create_app(data_dir):
    from refapp.cache import MemoryCache
    from refapp.config import Config
    from refapp.jobqueue import MemoryJobQueue
    from refapp.providers import ProviderManager
    from telemetry import sublarr_metrics as metrics

    app = Flask("sublarr")
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{data_dir}/sublarr.db"
    db.init_app(app)
    with app.app_context():
        db.create_all()
    app.cache_backend = MemoryCache()
    app.job_queue = MemoryJobQueue(app, workers=1)
    app.provider_manager = ProviderManager(Config.from_env({}, data_dir=str(data_dir), latency_scale=0.0,
                                                           failure_rate=0.0))

    @app.before_request
    def require_api_key():
        if request.path.startswith("/api/") and request.headers.get("X-Api-Key") != API_KEY:
            return jsonify(error="unauthorized"), 401

    @app.get("/api/v1/series/<int:series_id>")
    def series(series_id):
        key = f"series:{series_id}"
        if app.cache_backend.get(key) is None:
            app.cache_backend.set(key, {"id": series_id})
        return {"id": series_id}

    @app.post("/api/v1/translate")
    def enqueue():
        job = TranslationJob(fmt="ass")
        db.session.add(job)
        db.session.add(WantedItem())
        db.session.commit()
        app.job_queue.enqueue(translate, job.id)
        metrics.record_provider_search("opensubtitles", "success")
        metrics.record_provider_download("opensubtitles", "ass")
        metrics.record_http_request("POST", "/api/v1/translate", 202, 0.01)  # old callers: now a no-op
        return {"id": job.id}, 202

    # --- the adoption: these lines are all a Sublarr app factory needs ---
    from telemetry import init_telemetry
    init_telemetry(app)
    return app


@pytest.fixture
def sublarr_app(tmp_path, monkeypatch):
    monkeypatch.setenv("SUBLARR_METRICS_PATH", "/api/v1/metrics")
    monkeypatch.setenv("SUBLARR_METRICS_DISK_PATHS", str(tmp_path))
    app = create_app(tmp_path)
    yield app
    app.extensions["sublarr_telemetry"].shutdown()
    app.job_queue.shutdown(wait=True)


def test_sublarr_shaped_app_sees_every_family_it_exercised(sublarr_app, tmp_path):
    app = sublarr_app
    client = app.test_client()
    headers = {"X-Api-Key": API_KEY}
    for i in range(4):
        client.get(f"/api/v1/series/{i % 2}", headers=headers)
        client.post("/api/v1/translate", headers=headers)
    wait_for(lambda: app.job_queue.count_queued() == 0 and app.job_queue.count_active() == 0,
             what="jobs to finish")
    assert client.get("/api/v1/metrics").status_code == 401, "the metrics route sits behind the API key"
    response = client.get("/api/v1/metrics", headers=headers)
    assert response.status_code == 200
    text = response.get_data(as_text=True)

    families = parse(text)
    expected = {f.name for f in catalog.FAMILIES if f.group not in ("redis", "jobs")} - {
        "sublarr_telemetry_series_overflow_total"}  # only once a cap is reached
    present = {f.name for f in catalog.FAMILIES
               if (f.name[:-6] if f.name.endswith("_total") else f.name) in families}
    assert expected - present == set(), sorted(expected - present)
    ok = {"method": "POST", "endpoint": "/api/v1/translate", "status": "202"}
    assert sample_value(text, "sublarr_http_requests_total", ok) == 4, "no double count from record_http_request"
    assert sample_value(text, "sublarr_translation_total", {"status": "success", "format": "ass"}) == 4
    assert sample_value(text, "sublarr_cache_hits_total", {"backend": "memory"}) == 2
    assert sample_value(text, "sublarr_db_backend_info", {"dialect": "sqlite"}) == 1
    assert sample_value(text, "sublarr_job_queue_size") == 0
    assert sample_value(text, "sublarr_wanted_queue_size") == 4
    assert sample_value(text, "sublarr_circuit_breaker_state", {"provider": "opensubtitles"}) == 0
    assert catalog_label_problems(text, {"endpoint": {r.rule for r in app.url_map.iter_rules()} | {"<unmatched>"},
                                         "provider": {"opensubtitles", "podnapisi", "subdl", "animetosho"},
                                         "mount": {str(tmp_path)}}) == []


def test_old_module_api_keeps_working(sublarr_app):
    from telemetry import sublarr_metrics as metrics
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
    assert sample_value(body.decode(), "sublarr_provider_download_total", {"provider": "podnapisi", "format": "srt"}) == 1
    assert sample_value(body.decode(), "sublarr_db_queries_total", {"operation": "select"}) is None
