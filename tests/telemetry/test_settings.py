"""Settings validation, disabled or missing telemetry, double initialisation."""
import dataclasses
import subprocess
import sys
import textwrap

import pytest
from flask import Flask, request

from harness.support import REPO, sample_value, scrape
from telemetry import Settings, SettingsError, Telemetry, TelemetryWarning, init_telemetry
from telemetry import parsers, variables


@pytest.mark.parametrize("variable,value,accepted", [
    ("SUBLARR_METRICS_ENABLED", "maybe", "true, yes, on"),
    ("SUBLARR_METRICS_PATH", "metrics", "starting with '/'"),
    ("SUBLARR_METRICS_EXCLUDE_PATHS", "/health,healthz", "trailing '*' marks a prefix"),
    ("SUBLARR_METRICS_EXCLUDE_STATIC", "2", "false"),
    ("OTEL_METRICS_EXPORTER", "prometheus,zipkin", "prometheus, otlp, none"),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "http/protobuf, grpc"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "0", "milliseconds"),
    ("SUBLARR_METRICS_SOURCE_TIMEOUT", "60", "seconds from 0.05 to 5"),
    ("OTEL_METRICS_EXPORTER", "none,prometheus", "'none' alone"),
])
def test_invalid_value_names_variable_and_accepted_values(variable, value, accepted):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({variable: value})
    message = str(caught.value)
    assert variable in message and repr(value) in message and accepted in message


def test_the_dataclass_defaults_are_the_tables():
    """One truth: each field's default is its variable's, and each field has one source in the table."""
    defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
    assert set(variables.SOURCES) == set(defaults)
    assert {name: defaults[name] for name in variables.FIELD_DEFAULTS} == variables.FIELD_DEFAULTS
    assert set(defaults) - set(variables.FIELD_DEFAULTS) == {"path_explicit"}  # set by the path's rule
    unset = Settings.from_env({})
    assert {name: getattr(unset, name) for name in variables.FIELD_DEFAULTS} == variables.FIELD_DEFAULTS


_REFUSED = {parsers.Flag: "maybe", parsers.OneOf: "nope", parsers.Decimal: "nan", parsers.WholeNumber: "x",
            parsers.Ratio: "2", parsers.RoutePath: "x", parsers.PathPatterns: "x", parsers.Exporters: "nope",
            parsers.RedisUrl: "x", parsers.Listen: "x", parsers.Utf8Text: "\udcff",
            parsers.SecretFile: "/nonexistent/secret"}


@pytest.mark.parametrize("variable", [v for v in variables.VARIABLES if type(v.parse) in _REFUSED],
                         ids=lambda v: v.name)
def test_a_refused_value_names_the_variable_and_what_the_table_says_it_accepts(variable):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({variable.name: _REFUSED[type(variable.parse)]})
    assert caught.value.variable == variable.name
    if isinstance(variable.parse, parsers.SecretFile):
        assert caught.value.accepted == "a readable file (No such file or directory)"
    else:
        assert caught.value.accepted.startswith(variable.accepted)


def test_valid_values_and_defaults():
    assert Settings.from_env({}) == Settings(path_explicit=False)  # the default path, not a chosen one
    s = Settings.from_env({
        "SUBLARR_METRICS_ENABLED": "off", "SUBLARR_METRICS_PATH": "/internal/metrics",
        "SUBLARR_METRICS_EXCLUDE_PATHS": "/ping, /assets/*", "OTEL_METRICS_EXPORTER": "none",
        "SUBLARR_METRICS_PROVIDERS": "opensubtitles, podnapisi",
    })
    assert (s.enabled, s.path, s.exclude_paths, s.exporters, s.providers) == (
        False, "/internal/metrics", ("/ping", "/assets/*"), (), ("opensubtitles", "podnapisi"))
    assert Settings.from_env({"SUBLARR_METRICS_EXCLUDE_PATHS": "none"}).exclude_paths == ()


def test_invalid_environment_fails_init_with_the_variable(monkeypatch):
    monkeypatch.setenv("SUBLARR_METRICS_PATH", "no-slash")
    with pytest.raises(SettingsError, match="SUBLARR_METRICS_PATH"):
        init_telemetry(Flask("bad"))


def test_metrics_path_setting_moves_the_endpoint(monkeypatch):
    monkeypatch.setenv("SUBLARR_METRICS_PATH", "/internal/metrics")
    app = Flask("moved")
    app.get("/hello")(lambda: "hi")
    telemetry = init_telemetry(app)
    client = app.test_client()
    client.get("/hello")
    assert client.get("/metrics").status_code == 404
    text = scrape(client, "/internal/metrics")
    assert sample_value(text, "sublarr_http_requests_total",
                        {"method": "GET", "endpoint": "/hello", "status": "200"}) == 1
    telemetry.shutdown()


def test_an_explicit_path_that_is_a_route_is_served_by_telemetry_behind_the_apps_hooks():
    """SUBLARR_METRICS_PATH naming an existing route: telemetry serves it, the app's auth stays."""
    app = Flask("collide")
    app.get("/api/v1/metrics")(lambda: "the app's old exposition")

    @app.before_request
    def require_key():
        if request.path.startswith("/api/") and request.headers.get("X-Api-Key") != "k":
            return "unauthorized", 401
    telemetry = init_telemetry(app, settings=Settings.from_env({"SUBLARR_METRICS_PATH": "/api/v1/metrics"}))
    client = app.test_client()
    assert client.get("/api/v1/metrics").status_code == 401
    text = scrape(client, "/api/v1/metrics", headers={"X-Api-Key": "k"})
    assert "sublarr_http_requests_in_progress 0.0" in text, "the scrape is not in progress"
    assert "sublarr_http_requests_total{" not in text, "nor counted"
    assert client.get("/metrics").status_code == 404, "no second route"
    telemetry.shutdown()


def test_disabled_app_serves_and_metrics_says_why():
    app = Flask("disabled")
    app.get("/hello")(lambda: "hi")
    telemetry = init_telemetry(app, settings=Settings(enabled=False))
    client = app.test_client()
    assert client.get("/hello").data == b"hi"
    response = client.get("/metrics")
    assert response.status_code == 503
    assert b"disabled by SUBLARR_METRICS_ENABLED" in response.data
    assert not telemetry.enabled


def test_second_init_warns_and_does_nothing():
    app = Flask("twice")
    app.get("/hello")(lambda: "hi")
    first = init_telemetry(app, settings=Settings())
    wrapped = app.wsgi_app
    with pytest.warns(TelemetryWarning, match="already initialised"):
        second = init_telemetry(app, settings=Settings())
    with pytest.warns(TelemetryWarning, match="already initialised"):
        Telemetry(settings=Settings()).init_app(app)
    assert second is first and app.wsgi_app is wrapped
    client = app.test_client()
    client.get("/hello")
    text = scrape(client)
    assert sample_value(text, "sublarr_http_requests_total",
                        {"method": "GET", "endpoint": "/hello", "status": "200"}) == 1
    first.shutdown()


def test_missing_packages_leave_app_serving():
    """With the OpenTelemetry SDK unimportable, the app still serves and /metrics explains."""
    script = textwrap.dedent("""
        import sys
        sys.modules["opentelemetry"] = None  # makes `import opentelemetry...` raise ImportError
        from flask import Flask
        from telemetry import init_telemetry
        app = Flask("host")
        app.get("/hello")(lambda: "hi")
        telemetry = init_telemetry(app)
        client = app.test_client()
        assert client.get("/hello").data == b"hi"
        response = client.get("/metrics")
        print(response.status_code)
        print(response.get_data(as_text=True))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            env={"PYTHONPATH": str(REPO / "backend"), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    status, body = result.stdout.split("\n", 1)
    assert status == "503"
    assert "a telemetry package is missing" in body and "opentelemetry" in body
    assert "sublarr telemetry is off" in result.stderr


@pytest.mark.parametrize("exporters", [(), ("otlp",)])
def test_without_prometheus_export_the_metrics_path_says_why(exporters, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: pushes fail quietly
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    app = Flask("noexport")
    app.get("/hello")(lambda: "hi")
    telemetry = init_telemetry(app, settings=Settings(exporters=exporters))
    client = app.test_client()
    assert client.get("/hello").data == b"hi"
    response = client.get("/metrics")
    assert response.status_code == 503
    assert b"OTEL_METRICS_EXPORTER=" + (",".join(exporters) or "none").encode() in response.data
    telemetry.shutdown()
