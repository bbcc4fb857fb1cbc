"""The per-family series cap: overflow series, self-metric, one warning."""
import logging
import random
import string

from flask import Flask

from harness.support import label_sets, sample_value, scrape
from telemetry import Settings, Telemetry, events

REQUESTS = "sublarr_http_requests_total"


def test_http_label_sets_beyond_the_cap_fold_into_overflow(caplog):
    caplog.set_level(logging.WARNING)
    app = Flask("many_routes")
    for i in range(30):
        app.add_url_rule(f"/r{i}", f"r{i}", lambda: "ok")
    telemetry = Telemetry(settings=Settings(max_series=10)).init_app(app)
    client = app.test_client()
    for round_ in range(2):
        for i in range(30):
            client.get(f"/r{i}")
    text = scrape(client)
    sets = label_sets(text, REQUESTS)
    overflow = frozenset({"method": "_overflow", "endpoint": "_overflow", "status": "_overflow"}.items())
    assert len(sets) == 11 and overflow in sets
    assert sample_value(text, REQUESTS, dict(overflow)) == 40        # 20 routes x 2 rounds folded
    assert sum(sample_value(text, REQUESTS, dict(s)) for s in sets) == 60  # nothing lost
    assert label_sets(text, "sublarr_http_request_duration_seconds_count") == sets
    assert sample_value(text, "sublarr_telemetry_series_overflow_total",
                        {"family": "sublarr_http_requests_total"}) == 40
    warnings = [r for r in caplog.records if "reached its cap" in r.getMessage()]
    assert len(warnings) == 1
    telemetry.shutdown()


def test_event_families_are_capped_too():
    app = Flask("events")
    telemetry = Telemetry(settings=Settings(max_series=10)).init_app(app)
    for i in range(40):
        events.provider_searched(f"provider{i}", "success")
    text = scrape(app.test_client())
    sets = label_sets(text, "sublarr_provider_search_total")
    assert len(sets) == 11
    assert sample_value(text, "sublarr_provider_search_total", {"provider": "_overflow", "status": "_overflow"}) == 30
    telemetry.shutdown()


def test_hundred_thousand_unknown_paths_keep_series_bounded():
    app = Flask("scan")
    app.add_url_rule("/api/v1/jobs/<int:job_id>", "job", lambda job_id: "ok")
    telemetry = Telemetry(settings=Settings()).init_app(app)
    rng = random.Random(1)
    environ_base = {"REQUEST_METHOD": "GET", "SERVER_NAME": "x", "SERVER_PORT": "80", "wsgi.url_scheme": "http",
                    "wsgi.input": None, "SERVER_PROTOCOL": "HTTP/1.1"}

    def start_response(status, headers, exc_info=None):
        return lambda data: None
    for i in range(100_000):
        method = rng.choice(["GET", "POST", "FOO", "DELETE"])
        path = "/" + "".join(rng.choices(string.ascii_lowercase + "/%.", k=rng.randint(1, 30)))
        body = app(dict(environ_base, REQUEST_METHOD=method, PATH_INFO=path), start_response)
        for _ in body:
            pass
    text = scrape(app.test_client())
    sets = label_sets(text, REQUESTS)
    assert {dict(s)["endpoint"] for s in sets} <= {"<unmatched>", "/api/v1/jobs/<int:job_id>"}
    assert len(sets) <= 4 * 3  # methods x a few statuses
    assert sum(sample_value(text, REQUESTS, dict(s)) for s in sets) == 100_000
    telemetry.shutdown()
