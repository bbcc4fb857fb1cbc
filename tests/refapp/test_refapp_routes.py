"""The API through Flask's test client, on SQLite with the memory backends."""
from __future__ import annotations

import sys
import types

from sqlalchemy import func, select

from refapp.app import create_app
from refapp.models import Translation


def finished_job(client, wait_until, job_id):
    def done():
        job = client.get(f"/api/v1/jobs/{job_id}").get_json()
        return job if job["status"] not in ("pending", "running") else None

    return wait_until(done)


def translations(app):
    with app.session_factory() as session:
        return session.scalar(select(func.count()).select_from(Translation))


def test_app_exposes_components(app):
    for name in ("db_engine", "session_factory", "cache_backend", "job_queue", "refapp_config"):
        assert getattr(app, name) is not None
    manager = app.extensions["provider_manager"]  # Sublarr's shape: an extension, private breakers
    assert set(manager._circuit_breakers) == set(app.refapp_config.providers)
    assert {b.state.value for b in manager._circuit_breakers.values()} == {"closed"}


def test_health(client):
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_submitted_job_is_translated_by_the_queue(app, client, wait_until):
    response = client.post("/api/v1/jobs", json={"file_path": "/m/a.mkv", "source_lang": "en",
                                                 "target_lang": "de", "fmt": "ass"})
    assert response.status_code == 202
    body = response.get_json()

    job = finished_job(client, wait_until, body["id"])
    assert job["status"] == "success" and job["finished_at"]
    assert translations(app) == 1
    # The row is written inside the job; the queue marks the job finished just after it returns.
    wait_until(lambda: app.job_queue.get_job(body["queue_job_id"])["status"] == "finished")


def test_same_language_job_is_skipped(app, client, wait_until):
    job_id = client.post("/api/v1/jobs", json={"file_path": "/m/b.mkv", "source_lang": "en",
                                               "target_lang": "en"}).get_json()["id"]
    assert finished_job(client, wait_until, job_id)["status"] == "skipped"
    assert translations(app) == 0


def test_failed_translation_fails_row_and_queue_job(make_app, wait_until):
    app = make_app(failure_rate=1.0)
    client = app.test_client()
    job_id = client.post("/api/v1/jobs", json={"file_path": "/m/c.mkv"}).get_json()["id"]
    assert finished_job(client, wait_until, job_id)["status"] == "failed"
    wait_until(lambda: app.job_queue.count_failed() == 1)
    assert "TranslationFailed" in app.job_queue.get_failed_jobs()[0]["error"]


def test_job_validation(client):
    assert client.post("/api/v1/jobs", json={"fmt": "srt"}).status_code == 400
    assert client.post("/api/v1/jobs", json={"file_path": "/m/a.mkv", "fmt": "docx"}).status_code == 400
    assert client.post("/api/v1/jobs", data="not json").status_code == 400
    assert client.get("/api/v1/jobs").get_json() == []


def test_unknown_job_is_404_json(client):
    response = client.get("/api/v1/jobs/999")
    assert response.status_code == 404
    assert "999" in response.get_json()["error"]


def test_jobs_listed_newest_first(client):
    for name in ("a", "b", "c"):
        client.post("/api/v1/jobs", json={"file_path": f"/m/{name}.mkv"})
    paths = [job["file_path"] for job in client.get("/api/v1/jobs").get_json()]
    assert paths == ["/m/c.mkv", "/m/b.mkv", "/m/a.mkv"]


def test_wanted_items(client):
    created = client.post("/api/v1/wanted", json={"title": "Dark S01E01", "language": "de"})
    assert created.status_code == 201
    assert created.get_json()["status"] == "wanted"
    assert client.post("/api/v1/wanted", json={"title": ""}).status_code == 400
    assert [w["title"] for w in client.get("/api/v1/wanted").get_json()] == ["Dark S01E01"]


def test_search_goes_through_the_cache(app, client):
    item_id = client.post("/api/v1/wanted", json={"title": "Frieren"}).get_json()["id"]

    first = client.post(f"/api/v1/wanted/{item_id}/search")
    second = client.post(f"/api/v1/wanted/{item_id}/search")
    assert first.status_code == second.status_code == 200
    assert first.get_json()["cached"] is False
    assert second.get_json()["cached"] is True
    assert second.get_json()["results"] == first.get_json()["results"]
    stats = app.cache_backend.get_stats()
    assert (stats["hits"], stats["misses"]) == (1, 1)
    assert app.cache_backend.exists("search:Frieren:en")

    status = client.get("/api/v1/wanted").get_json()[0]["status"]
    assert status == ("found" if first.get_json()["results"] else "wanted")


def test_search_unknown_item_is_404(client):
    assert client.post("/api/v1/wanted/42/search").status_code == 404


def test_download(client):
    response = client.post("/api/v1/providers/subdl/download", json={"id": "s-1", "fmt": "vtt"})
    assert response.status_code == 200
    assert response.get_json()["fmt"] == "vtt"
    assert client.post("/api/v1/providers/nope/download").status_code == 404
    assert client.post("/api/v1/providers/subdl/download", json={"fmt": "docx"}).status_code == 400


def test_failing_provider_gives_502_then_503_when_breaker_opens(make_app):
    app = make_app(failure_rate=1.0)
    client = app.test_client()
    codes = [client.post("/api/v1/providers/subdl/download").status_code for _ in range(4)]
    assert codes == [502, 502, 502, 503]
    response = client.post("/api/v1/providers/subdl/download")
    assert int(response.headers["Retry-After"]) >= 1
    assert client.get("/api/v1/status").get_json()["providers"]["subdl"] == "open"


def test_series_lookup_misses_then_hits(app, client):
    first = client.get("/api/v1/series/7").get_json()
    second = client.get("/api/v1/series/7").get_json()
    assert (first["cached"], second["cached"]) == (False, True)
    assert first["title"] == second["title"] == "Series 7"
    assert app.cache_backend.get_stats()["size"] == 1


def test_unhandled_error_is_500(client):
    assert client.get("/api/v1/debug/error").status_code == 500


def test_unknown_path_is_404(client):
    assert client.get("/api/v1/no-such-thing").status_code == 404


def test_static_file(client):
    response = client.get("/static/app.css")
    assert response.status_code == 200
    assert response.mimetype == "text/css"
    response.close()


def test_status(client):
    client.get("/api/v1/series/1")
    status = client.get("/api/v1/status").get_json()
    assert status["queue"]["type"] == "memory"
    assert status["cache"] == {"backend": "memory", "hits": 0, "misses": 1, "size": 1}
    assert status["providers"] == {name: "closed" for name in
                                   ("opensubtitles", "podnapisi", "subdl", "animetosho")}


def test_app_runs_when_telemetry_cannot_be_imported(make_config, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "telemetry", types.ModuleType("telemetry"))
    app = create_app(make_config(), telemetry=True)
    try:
        assert app.test_client().get("/api/v1/health").status_code == 200
        assert "telemetry not available" in caplog.text
    finally:
        app.job_queue.shutdown()
        app.db_engine.dispose()


def test_telemetry_is_adopted_and_sees_every_component(make_config):
    app = create_app(make_config(), telemetry=True)
    try:
        client = app.test_client()
        client.get("/api/v1/series/1")
        text = client.get("/metrics").get_data(as_text=True)
        for series in ('sublarr_cache_misses_total{backend="memory"} 1.0',
                       'sublarr_queue_size{backend="memory"}',
                       'sublarr_db_backend_info{dialect="sqlite"} 1.0',
                       'sublarr_circuit_breaker_state{provider="opensubtitles"} 0.0'):
            assert series in text
    finally:
        app.extensions["sublarr_telemetry"].shutdown()
        app.job_queue.shutdown()
        app.db_engine.dispose()


def test_job_that_cannot_be_queued_is_marked_failed(app, client):
    app.job_queue.shutdown()  # enqueue now raises, as it would with Redis down
    assert client.post("/api/v1/jobs", json={"file_path": "/m/a.mkv"}).status_code == 500
    assert [job["status"] for job in client.get("/api/v1/jobs").get_json()] == ["failed"]
