"""Automatic HTTP families: labels, exclusions, errors, bounded cardinality."""
import random
import string
import sys
import threading

import pytest
from flask import Flask
from werkzeug.serving import make_server

from harness.flask_apps import build_app
from harness.support import label_sets, sample_value, scrape
from telemetry import Settings, Telemetry

REQUESTS = "sublarr_http_requests_total"
COUNT = "sublarr_http_request_duration_seconds_count"
IN_PROGRESS = "sublarr_http_requests_in_progress"


def labels(method, endpoint, status):
    return {"method": method, "endpoint": endpoint, "status": status}


def test_route_template_not_raw_path(http_app):
    app, _ = http_app
    client = app.test_client()
    for job_id in (1, 2, 3, 99):
        assert client.get(f"/api/v1/jobs/{job_id}").status_code == 200
    text = scrape(client)
    assert sample_value(text, REQUESTS, labels("GET", "/api/v1/jobs/<int:job_id>", "200")) == 4
    assert sample_value(text, COUNT, labels("GET", "/api/v1/jobs/<int:job_id>", "200")) == 4
    assert "/api/v1/jobs/1" not in text.replace("/api/v1/jobs/<int:job_id>", "")


def test_status_codes_unmatched_and_other_method(http_app):
    app, _ = http_app
    client = app.test_client()
    client.post("/api/v1/jobs")
    client.get("/api/v1/missing/thing")           # a matched route that answers 404
    client.get("/no/such/path")                   # no route at all
    client.open("/api/v1/jobs/1", method="BREW")  # non-standard method
    text = scrape(client)
    assert sample_value(text, REQUESTS, labels("POST", "/api/v1/jobs", "201")) == 1
    assert sample_value(text, REQUESTS, labels("GET", "/api/v1/missing/<name>", "404")) == 1
    assert sample_value(text, REQUESTS, labels("GET", "<unmatched>", "404")) == 1
    assert sample_value(text, REQUESTS, labels("_OTHER", "<unmatched>", "405")) == 1
    assert "BREW" not in text


@pytest.mark.parametrize("propagate", [False, True])
def test_unhandled_exception_counts_as_500(propagate):
    app, telemetry = build_app()
    app.config["PROPAGATE_EXCEPTIONS"] = propagate
    client = app.test_client()
    if propagate:
        with pytest.raises(RuntimeError):
            client.get("/api/v1/boom")
    else:
        assert client.get("/api/v1/boom").status_code == 500
    text = scrape(client)
    assert sample_value(text, REQUESTS, labels("GET", "/api/v1/boom", "500")) == 1
    assert sample_value(text, COUNT, labels("GET", "/api/v1/boom", "500")) == 1
    assert sample_value(text, IN_PROGRESS) == 0
    telemetry.shutdown()


def test_metrics_health_and_static_paths_are_not_measured(tmp_path):
    (tmp_path / "app.css").write_text("body{}")
    app = Flask("static_app", static_folder=str(tmp_path), static_url_path="/static")
    app.add_url_rule("/api/v1/health", "health", lambda: {"status": "ok"})
    app.add_url_rule("/api/v1/thing", "thing", lambda: "ok")
    telemetry = Telemetry(settings=Settings()).init_app(app)
    client = app.test_client()
    assert client.get("/static/app.css").status_code == 200
    assert client.get("/api/v1/health").status_code == 200
    client.get("/api/v1/thing")
    for _ in range(3):
        scrape(client)
    text = scrape(client)
    endpoints = {dict(s)["endpoint"] for s in label_sets(text, REQUESTS)}
    assert endpoints == {"/api/v1/thing"}
    telemetry.shutdown()


def test_excluded_paths_are_configurable():
    app, telemetry = build_app(Settings(exclude_paths=("/api/v1/jobs/*",)))
    client = app.test_client()
    client.get("/api/v1/jobs/1")
    client.get("/api/v1/health")  # no longer excluded
    text = scrape(client)
    assert sample_value(text, REQUESTS, labels("GET", "/api/v1/jobs/<int:job_id>", "200")) is None
    assert sample_value(text, REQUESTS, labels("GET", "/api/v1/health", "200")) == 1
    telemetry.shutdown()


def test_random_unknown_paths_add_one_series(http_app):
    app, _ = http_app
    client = app.test_client()
    client.get("/api/v1/jobs/1")
    before = label_sets(scrape(client), REQUESTS)
    rng = random.Random(7)
    for _ in range(10_000):
        path = "/" + "/".join("".join(rng.choices(string.ascii_letters + string.digits, k=rng.randint(1, 12)))
                              for _ in range(rng.randint(1, 4)))
        client.get(path)
    text = scrape(client)
    after = label_sets(text, REQUESTS)
    assert after - before == {frozenset(labels("GET", "<unmatched>", "404").items())}
    assert sample_value(text, REQUESTS, labels("GET", "<unmatched>", "404")) == 10_000
    assert label_sets(text, COUNT) == after


def test_scrape_is_never_in_progress_but_a_running_request_is():
    app, telemetry = build_app()
    entered, release = threading.Event(), threading.Event()

    @app.get("/api/v1/slow")
    def slow():
        entered.set()
        release.wait(10)
        return "done"

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    import requests
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        for _ in range(3):
            text = requests.get(base + "/metrics", timeout=5).text
            assert sample_value(text, IN_PROGRESS) == 0
        slow_request = threading.Thread(target=requests.get, args=(base + "/api/v1/slow",), kwargs={"timeout": 10})
        slow_request.start()
        assert entered.wait(5)
        text = requests.get(base + "/metrics", timeout=5).text
        assert sample_value(text, IN_PROGRESS) == 1
        release.set()
        slow_request.join(5)
        text = requests.get(base + "/metrics", timeout=5).text
        assert sample_value(text, IN_PROGRESS) == 0
        assert sample_value(text, REQUESTS, labels("GET", "/api/v1/slow", "200")) == 1
    finally:
        release.set()
        server.shutdown()
        telemetry.shutdown()


def test_counts_are_exact_under_threads():
    app, telemetry = build_app()
    client_count, per_thread = 8, 300
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        def hammer():
            client = app.test_client()
            for i in range(per_thread):
                client.get(f"/api/v1/jobs/{i}")
        threads = [threading.Thread(target=hammer) for _ in range(client_count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    text = scrape(app.test_client())
    expected = client_count * per_thread
    assert sample_value(text, REQUESTS, labels("GET", "/api/v1/jobs/<int:job_id>", "200")) == expected
    assert sample_value(text, COUNT, labels("GET", "/api/v1/jobs/<int:job_id>", "200")) == expected
    assert sample_value(text, IN_PROGRESS) == 0
    telemetry.shutdown()


def test_buffer_is_bounded_without_scrapes():
    app, telemetry = build_app()
    deferred = telemetry.pipeline.http.requests
    deferred.buffer_limit = 50
    client = app.test_client()
    for i in range(500):
        client.get(f"/api/v1/jobs/{i}")
        assert deferred.pending <= 51
    text = scrape(client)
    assert sample_value(text, REQUESTS, labels("GET", "/api/v1/jobs/<int:job_id>", "200")) == 500
    telemetry.shutdown()


def test_route_labels_over_a_real_server():
    """Matched (with a URL parameter), matched but 404, unmatched, unhandled error, wrong method."""
    app, telemetry = build_app()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    import requests
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        with requests.Session() as session:
            statuses = [session.get(base + path, timeout=5).status_code
                        for path in ("/api/v1/jobs/7", "/api/v1/jobs/8", "/api/v1/missing/x", "/no/such/path",
                                     "/api/v1/boom")]
            statuses.append(session.delete(base + "/api/v1/jobs/7", timeout=5).status_code)
            assert statuses == [200, 200, 404, 404, 500, 405]
            text = session.get(base + "/metrics", timeout=5).text
        assert sample_value(text, REQUESTS, labels("GET", "/api/v1/jobs/<int:job_id>", "200")) == 2
        assert sample_value(text, REQUESTS, labels("GET", "/api/v1/missing/<name>", "404")) == 1
        assert sample_value(text, REQUESTS, labels("GET", "<unmatched>", "404")) == 1
        assert sample_value(text, REQUESTS, labels("GET", "/api/v1/boom", "500")) == 1
        assert sample_value(text, REQUESTS, labels("DELETE", "<unmatched>", "405")) == 1
        assert len(label_sets(text, REQUESTS)) == 5
    finally:
        server.shutdown()
        telemetry.shutdown()


def test_the_route_comes_from_the_request_werkzeug_keeps_in_the_environ():
    """Werkzeug documents that a request stores itself as environ['werkzeug.request']
    (populate_request, on for Flask's): while the response starts, that is Flask's
    request, so the route is one lookup away. If Flask stops doing so, this fails
    (the request proxy still answers, at its higher cost)."""
    from flask import request

    from telemetry.http_metrics import route_of

    app = Flask("environ_route", static_folder=None)
    seen = {}

    @app.get("/items/<int:n>")
    def item(n):
        seen["same_request"] = request.environ.get("werkzeug.request") is request._get_current_object()
        seen["route"] = route_of(request.environ)
        return "ok"

    assert app.test_client().get("/items/3").status_code == 200
    assert seen == {"same_request": True, "route": "/items/<int:n>"}


def test_a_plain_werkzeug_request_made_in_the_view_does_not_lose_the_route():
    """A view or extension wrapping the environ in its own werkzeug Request replaces
    environ['werkzeug.request']; the route then comes from Flask's request proxy."""
    from werkzeug.wrappers import Request

    app, telemetry = build_app()

    @app.get("/api/v1/raw/<int:n>")
    def raw(n):
        from flask import request
        Request(request.environ)  # populates environ['werkzeug.request'] with itself
        return "ok"

    client = app.test_client()
    assert client.get("/api/v1/raw/1").status_code == 200
    assert sample_value(scrape(client), REQUESTS, labels("GET", "/api/v1/raw/<int:n>", "200")) == 1
    telemetry.shutdown()
