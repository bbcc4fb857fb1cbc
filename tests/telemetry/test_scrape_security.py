"""Scrape auth (none, bearer, basic), secrets from *_FILE, a separate listener."""
import base64
import logging

import pytest
import requests
from flask import Flask

from harness.support import sample_value
from telemetry import Settings, SettingsError, init_telemetry

TOKEN = "tok-3f9a2c71e6"
PASSWORD = "pw-81c2d94b7a"


def make_app(monkeypatch, **env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    app = Flask("secured")
    app.get("/hello")(lambda: "hi")
    telemetry = init_telemetry(app)
    return app, telemetry


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_bearer(monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    app, telemetry = make_app(monkeypatch, SUBLARR_METRICS_AUTH="bearer", SUBLARR_METRICS_TOKEN=TOKEN)
    client = app.test_client()
    client.get("/hello")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": basic("prometheus", TOKEN)},
                    {"Authorization": "Bearer " + TOKEN + "x"}):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="sublarr-metrics"'
        assert b"sublarr_" not in response.data
    response = client.get("/metrics", headers={"Authorization": "Bearer " + TOKEN})
    assert response.status_code == 200
    assert sample_value(response.get_data(as_text=True), "sublarr_http_requests_total",
                        {"method": "GET", "endpoint": "/hello", "status": "200"}) == 1
    assert TOKEN not in caplog.text and TOKEN not in repr(telemetry.settings) and TOKEN not in repr(telemetry._auth)
    telemetry.shutdown()


def test_basic_with_password_file(monkeypatch, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    secret = tmp_path / "metrics_password"
    secret.write_text(PASSWORD + "\n")
    app, telemetry = make_app(monkeypatch, SUBLARR_METRICS_AUTH="basic", SUBLARR_METRICS_USERNAME="scraper",
                              SUBLARR_METRICS_PASSWORD_FILE=str(secret))
    client = app.test_client()
    for headers in ({}, {"Authorization": basic("scraper", "nope")}, {"Authorization": basic("other", PASSWORD)},
                    {"Authorization": "Basic !!!not-base64"}, {"Authorization": "Bearer " + PASSWORD}):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith('Basic realm="sublarr-metrics"')
    assert client.get("/metrics", headers={"Authorization": basic("scraper", PASSWORD)}).status_code == 200
    assert PASSWORD not in caplog.text and PASSWORD not in repr(telemetry.settings)
    telemetry.shutdown()


@pytest.mark.parametrize("env,variable", [
    ({"SUBLARR_METRICS_AUTH": "bearer"}, "SUBLARR_METRICS_TOKEN"),
    ({"SUBLARR_METRICS_AUTH": "basic"}, "SUBLARR_METRICS_PASSWORD"),
    ({"SUBLARR_METRICS_AUTH": "digest"}, "SUBLARR_METRICS_AUTH"),
    ({"SUBLARR_METRICS_AUTH": "bearer", "SUBLARR_METRICS_TOKEN_FILE": "/nonexistent/token"},
     "SUBLARR_METRICS_TOKEN_FILE"),
    ({"SUBLARR_METRICS_TOKEN": TOKEN, "SUBLARR_METRICS_TOKEN_FILE": "/etc/hostname"}, "SUBLARR_METRICS_TOKEN_FILE"),
    ({"SUBLARR_METRICS_LISTEN": "localhost"}, "SUBLARR_METRICS_LISTEN"),
    ({"SUBLARR_METRICS_MAX_SERIES": "5"}, "SUBLARR_METRICS_MAX_SERIES"),
])
def test_bad_security_settings_name_the_variable_never_the_secret(env, variable):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert variable in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_separate_listener_serves_metrics_instead_of_the_app(monkeypatch):
    app, telemetry = make_app(monkeypatch, SUBLARR_METRICS_LISTEN="127.0.0.1:0",
                              SUBLARR_METRICS_AUTH="bearer", SUBLARR_METRICS_TOKEN=TOKEN)
    try:
        client = app.test_client()
        client.get("/hello")
        assert client.get("/metrics").status_code == 404, "not on the app's port"
        url = f"http://127.0.0.1:{telemetry.listener.port}/metrics"
        denied = requests.get(url, timeout=5)
        assert denied.status_code == 401 and "Bearer" in denied.headers["WWW-Authenticate"]
        served = requests.get(url, headers={"Authorization": "Bearer " + TOKEN}, timeout=5)
        assert served.status_code == 200
        assert served.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert sample_value(served.text, "sublarr_http_requests_total",
                            {"method": "GET", "endpoint": "/hello", "status": "200"}) == 1
        assert requests.get(url.replace("/metrics", "/other"), timeout=5).status_code == 404
    finally:
        telemetry.shutdown()
