"""The /metrics response: content types, negotiation, compression, events."""
import gzip

from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families

from harness.support import sample_value, scrape
from telemetry import events

JOB_1 = {"method": "GET", "endpoint": "/api/v1/jobs/<int:job_id>", "status": "200"}  # GET /api/v1/jobs/1


def test_plain_text_content_type_and_one_type_block_per_family(http_app):
    app, _ = http_app
    client = app.test_client()
    client.get("/api/v1/jobs/1")
    response = client.get("/metrics")
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.get_data(as_text=True)
    types = [line.split()[2:] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len({name for name, _ in types})
    assert ["sublarr_http_requests_total", "counter"] in types
    assert sample_value(text, "sublarr_http_requests_total", JOB_1) == 1
    assert "otel_scope" not in text and "target_info" not in text


def test_openmetrics_is_negotiated(http_app):
    app, _ = http_app
    client = app.test_client()
    client.get("/api/v1/jobs/1")
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    text = response.get_data(as_text=True)
    assert text.endswith("# EOF\n")
    families = {family.name: family for family in openmetrics_families(text)}  # the strict parser
    requests = families["sublarr_http_requests"]
    assert requests.type == "counter"
    assert [(s.name, s.labels, s.value) for s in requests.samples if s.name.endswith("_total")] == [
        ("sublarr_http_requests_total", JOB_1, 1.0)]


def test_gzip_when_asked(http_app):
    app, _ = http_app
    client = app.test_client()
    client.get("/api/v1/jobs/1")
    response = client.get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert response.headers["Content-Encoding"] == "gzip"
    text = gzip.decompress(response.data).decode()
    assert sample_value(text, "sublarr_http_requests_total", JOB_1) == 1


def test_events_reach_the_subtitle_families_with_bounded_labels(http_app):
    app, telemetry = http_app
    events.translation_finished("success", "ASS", 12.0)
    events.translation_finished("failed", "docx", 700.0)
    events.provider_searched("opensubtitles", "success")
    events.provider_searched("opensubtitles", "exploded")
    events.provider_downloaded("opensubtitles", "srt")
    text = scrape(app.test_client())
    assert sample_value(text, "sublarr_translation_total", {"status": "success", "format": "ass"}) == 1
    assert sample_value(text, "sublarr_translation_total", {"status": "failed", "format": "other"}) == 1
    assert sample_value(text, "sublarr_translation_duration_seconds_bucket", {"le": "30"}) == 1
    assert sample_value(text, "sublarr_translation_duration_seconds_count") == 2
    assert sample_value(text, "sublarr_provider_search_total", {"provider": "opensubtitles", "status": "other"}) == 1
    assert sample_value(text, "sublarr_provider_download_total", {"provider": "opensubtitles", "format": "srt"}) == 1


def test_events_are_safe_without_telemetry(http_app):
    _, telemetry = http_app
    telemetry.shutdown()
    assert events.active_sink() is None
    events.translation_finished("success", "srt", 1.0)  # must not raise


def test_a_failing_sink_never_raises_into_the_caller(caplog):
    class Broken:
        def translation_finished(self, *a):
            raise RuntimeError("sink broke")
    previous = events.active_sink()
    events._failed_once.discard("translation_finished")
    events.install(Broken())
    try:
        events.translation_finished("success", "srt", 1.0)
        events.translation_finished("success", "srt", 1.0)
    finally:
        events.install(previous)
    assert sum("recording translation_finished failed" in r.getMessage() for r in caplog.records) == 1
