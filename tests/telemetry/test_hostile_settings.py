"""Odd settings: each one parses what it validates, or stops the start naming itself.

Property-based over every variable this module reads, then one test per class
of the hostile-input issue: numbers, the metrics path, the listener, the
export interval, secrets read like Prometheus reads them, credentials never
ignored, one bad item (a disk path, a breaker), the metrics route under another
spelling.
"""
from __future__ import annotations

import logging
import socket

import pytest
from flask import Flask
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from harness.support import REPO, disk_used_percent, parse, sample_value, samples, scrape
from telemetry import Settings, SettingsError, StateTargets, Telemetry, TelemetryConfigError
from telemetry import variables
from telemetry.settings import MIN_EXPORT_INTERVAL_MS

VARIABLES = [variable.name for variable in variables.VARIABLES if variable.parse is not None]  # those telemetry parses
SECRET_VARIABLES = {"SUBLARR_METRICS_TOKEN", "SUBLARR_METRICS_PASSWORD"}

any_text = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=30),
    st.text(st.sampled_from("0123456789０١²٣.-+_e :/[]<>@%?#*,nan"), max_size=12),
    st.sampled_from(["1", "10", "500", "1e3", "nan", "inf", "-1", "1_000", "１０", "²", "/metrics",
                     "/<path:p>", "//metrics", "127.0.0.1:0", "[::1]:9464", ":70000", "redis://localhost:6379/0",
                     "redis://:x@host:99999", "http://x", "bearer", "none", "on", "prometheus,otlp"]),
)


def _check_outcome(env: dict, variable: str) -> Settings | None:
    """Either valid settings or one SettingsError naming a variable and what it accepts."""
    try:
        return Settings.from_env(env)
    except SettingsError as exc:
        message = str(exc)
        assert exc.variable in message and "accepted values are" in message, message
        if variable not in SECRET_VARIABLES and not variable.startswith("SUBLARR_METRICS_AUTH"):
            assert exc.variable == variable or exc.variable.startswith(variable.rsplit("_", 1)[0]), message
        return None


@given(variable=st.sampled_from(VARIABLES), value=any_text)
@settings(max_examples=400, deadline=None)
def test_every_setting_parses_what_it_validates(variable, value):
    parsed = _check_outcome({variable: value}, variable)
    if parsed is None:
        return
    if variable == "SUBLARR_METRICS_MAX_SERIES" and value.strip():
        assert parsed.max_series == int(value.strip()) and 10 <= parsed.max_series <= 1_000_000
    if variable == "SUBLARR_METRICS_SOURCE_TIMEOUT" and value.strip():
        assert 0.05 <= parsed.source_timeout <= 5
    if variable == "OTEL_METRIC_EXPORT_INTERVAL" and value.strip():
        assert MIN_EXPORT_INTERVAL_MS <= parsed.export_interval_ms <= 3_600_000
    if variable == "SUBLARR_METRICS_LISTEN" and parsed.listen is not None:
        host, port = parsed.listen
        host.encode("idna" if host.isascii() else "utf-8")
        assert 0 <= port <= 65535
    if variable == "SUBLARR_REDIS_URL" and parsed.redis_url is not None:
        import redis
        redis.Redis.from_url(parsed.redis_url)  # the library that uses it accepts it


path_like = st.one_of(any_text, st.from_regex(r"/[a-z0-9._~-]{1,10}(/[a-z0-9:@-]{1,8}){0,2}/?", fullmatch=True),
                      st.text(st.sampled_from("/ab-._~<>:%?#é@!"), min_size=1, max_size=12)
                      .map(lambda s: "/" + s))


@given(path=path_like)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_an_accepted_metrics_path_serves_metrics_and_leaves_other_urls_alone(path):
    parsed = _check_outcome({"SUBLARR_METRICS_PATH": path}, "SUBLARR_METRICS_PATH")
    event("refused" if parsed is None else "accepted")
    if parsed is None:
        return
    app = Flask("paths", static_folder=None)
    app.get("/api/v1/ping")(lambda: "pong")
    if parsed.path == "/api/v1/ping":
        return
    telemetry = Telemetry(settings=parsed).init_app(app)
    try:
        client = app.test_client()
        assert client.get(parsed.path).status_code == 200
        assert client.get("/api/v1/ping").status_code == 200
        for unknown in ("/no/such/page", "/metrics-not", parsed.path.rstrip("/") + "/x/y"):
            assert client.get(unknown).status_code in (404, 405, 308), unknown
    finally:
        telemetry.shutdown()


@pytest.mark.parametrize("variable,value", [
    ("SUBLARR_METRICS_MAX_SERIES", "１０００"),      # full-width digits pass str.isdigit()
    ("SUBLARR_METRICS_MAX_SERIES", "²⁰⁰"),          # superscripts pass isdigit() and crash int()
    ("SUBLARR_METRICS_LISTEN", "127.0.0.1:９４６４"),
    ("SUBLARR_METRICS_SOURCE_TIMEOUT", "nan"),
    ("SUBLARR_METRICS_PATH", "/<path:p>"),
    ("SUBLARR_METRICS_PATH", "/internal//metrics"),
    ("SUBLARR_METRICS_PATH", "/metrics/../x"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "1"),
    ("SUBLARR_REDIS_URL", "localhost:6379"),
    ("SUBLARR_REDIS_URL", "redis://localhost:notaport"),
    ("OTEL_SERVICE_NAME", "sublarr-\udcff"),                   # non-UTF-8 bytes in the environment
    ("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=pod-\udcfe"),
])
def test_odd_values_stop_the_start_naming_the_variable(variable, value):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({variable: value})
    assert caught.value.variable == variable and variable in str(caught.value)
    assert "accepted values are" in str(caught.value)


def test_export_interval_floor_is_documented():
    page = (REPO / "docs" / "settings.md").read_text()
    assert f"milliseconds between OTLP pushes, {MIN_EXPORT_INTERVAL_MS} at least" in page
    assert Settings.from_env({"OTEL_METRIC_EXPORT_INTERVAL": str(MIN_EXPORT_INTERVAL_MS)}).export_interval_ms == 500


@pytest.mark.parametrize("listen", ["busy", "unresolvable"])
def test_listener_that_cannot_listen_names_the_variable(listen):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        value = f"127.0.0.1:{taken.getsockname()[1]}" if listen == "busy" else "no-such-host.invalid:9464"
        settings_ = Settings.from_env({"SUBLARR_METRICS_LISTEN": value})
        app = Flask("listen")
        with pytest.raises(TelemetryConfigError) as caught:
            Telemetry(settings=settings_).init_app(app)
    message = str(caught.value)
    assert f"SUBLARR_METRICS_LISTEN={value!r}" in message and "HOST:PORT" in message
    assert (caught.value.variable, caught.value.value) == ("SUBLARR_METRICS_LISTEN", value)
    assert caught.value.accepted.startswith("HOST:PORT")
    assert "sublarr_telemetry" not in app.extensions


# -- secrets ----------------------------------------------------------------------------------

def test_token_file_is_read_as_prometheus_reads_credentials_file(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_bytes(b"tok-3f9a2c71e6  \n\n")
    parsed = Settings.from_env({"SUBLARR_METRICS_AUTH": "bearer", "SUBLARR_METRICS_TOKEN_FILE": str(token_file)})
    assert parsed.token == "tok-3f9a2c71e6"


def test_non_utf8_secret_file_is_a_settings_error(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_bytes(b"tok-\xff\xfe\n")
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"SUBLARR_METRICS_AUTH": "bearer", "SUBLARR_METRICS_TOKEN_FILE": str(token_file)})
    assert caught.value.variable == "SUBLARR_METRICS_TOKEN_FILE" and "UTF-8" in str(caught.value)


def test_a_token_without_auth_mode_switches_to_bearer_and_says_so(caplog):
    with caplog.at_level(logging.WARNING, logger="telemetry.variables"):
        parsed = Settings.from_env({"SUBLARR_METRICS_TOKEN": "tok-1"})
    assert parsed.auth == "bearer"
    assert "SUBLARR_METRICS_AUTH is unset but SUBLARR_METRICS_TOKEN is set" in caplog.text
    assert "tok-1" not in caplog.text
    with pytest.raises(SettingsError, match="SUBLARR_METRICS_AUTH"):
        Settings.from_env({"SUBLARR_METRICS_AUTH": "none", "SUBLARR_METRICS_TOKEN": "tok-1"})
    with pytest.raises(SettingsError, match="SUBLARR_METRICS_AUTH"):
        Settings(auth="none", token="tok-1")


# Weighted towards values that pass, so that many examples reach the served app.
secret_text = st.one_of(st.none(), st.sampled_from(["tok-1", " tok-1 \n", "pässwörd", "", "  "]),
                        st.text(st.characters(exclude_categories=()), max_size=12))
secret_bytes = st.one_of(st.none(), st.none(), st.sampled_from([b"tok-1\n", b"  \n", b"p\xc3\xa4ss \n", b"\xff"]),
                         st.binary(max_size=12))


@given(auth=st.one_of(st.none(), st.sampled_from(["", " ", "none", "NONE", "bearer", " Basic ", "digest"])),
       token=secret_text, password=secret_text, token_file=secret_bytes, password_file=secret_bytes,
       username=st.one_of(st.none(), st.sampled_from(["", "scraper", "a:b"])))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_no_configuration_serves_metrics_unauthenticated_when_a_credential_is_set(
        tmp_path, auth, token, password, token_file, password_file, username):
    env = {name: value for name, value in (("SUBLARR_METRICS_AUTH", auth), ("SUBLARR_METRICS_TOKEN", token),
                                           ("SUBLARR_METRICS_PASSWORD", password),
                                           ("SUBLARR_METRICS_USERNAME", username)) if value is not None}
    for name, content in (("SUBLARR_METRICS_TOKEN_FILE", token_file), ("SUBLARR_METRICS_PASSWORD_FILE",
                                                                        password_file)):
        if content is not None:
            path = tmp_path / name
            path.write_bytes(content)
            env[name] = str(path)
    credential_set = any(value is not None and value.strip() for value in (token, password)) or any(
        content is not None and content.strip() for content in (token_file, password_file))
    try:
        parsed = Settings.from_env(env)
    except SettingsError as exc:
        event("refused at start")
        for marker in ("tok-1", "pässwörd"):  # the distinctive secrets never appear in an error
            assert marker not in str(exc)
        return
    app = Flask("auth")
    telemetry = Telemetry(settings=parsed).init_app(app)
    try:
        status = app.test_client().get("/metrics").status_code
    finally:
        telemetry.shutdown()
    event(f"served with auth={parsed.auth}, credential set: {credential_set}")
    if credential_set:
        assert parsed.auth in ("bearer", "basic") and status == 401, (env, parsed.auth, status)
    else:
        assert status == (401 if parsed.auth != "none" else 200)


# -- one bad item, another spelling -----------------------------------------------------------

def test_one_bad_disk_path_hides_none_of_the_others(tmp_path, caplog):
    settings_ = Settings.from_env({"SUBLARR_METRICS_DISK_PATHS": f"{tmp_path},/nonexistent,/tmp"})
    app = Flask("disks")
    telemetry = Telemetry(settings=settings_).init_app(app)
    client = app.test_client()
    try:
        with caplog.at_level(logging.WARNING, logger="telemetry.state.sources"):
            first = scrape(client)
            telemetry.pipeline.callbacks.sources["disk"]._checked_at = None  # force a second read
            second = scrape(client)
    finally:
        telemetry.shutdown()
    for text in (first, second):
        disks = {labels["mount"]: value for _, labels, value in parse(text)["sublarr_disk_usage_percent"]}
        assert disks == {str(tmp_path): pytest.approx(disk_used_percent(tmp_path), abs=1),
                         "/tmp": pytest.approx(disk_used_percent("/tmp"), abs=1)}
        assert sample_value(text, "sublarr_telemetry_source_up", {"source": "disk"}) == 1
    assert sample_value(second, "sublarr_telemetry_source_errors_total", {"source": "disk"}) == 2
    assert caplog.text.count("'/nonexistent'") == 1, caplog.text


@pytest.mark.parametrize("spelling", ["//metrics", "///metrics", "/metrics"])
def test_metrics_route_under_another_spelling_is_not_measured(spelling):
    app = Flask("spelling")
    app.get("/api/v1/ping")(lambda: "pong")
    telemetry = Telemetry(settings=Settings()).init_app(app)
    client = app.test_client()
    try:
        assert client.get("/", environ_overrides={"PATH_INFO": spelling}).status_code == 200  # reached metrics
        client.get("/api/v1/ping")
        text = scrape(client)
    finally:
        telemetry.shutdown()
    endpoints = {labels["endpoint"] for labels, _ in samples(text, "sublarr_http_requests_total")}
    assert endpoints == {"/api/v1/ping"}, endpoints


def test_one_broken_breaker_hides_none_of_the_others(caplog):
    class Broken:
        @property
        def state(self):
            raise RuntimeError("breaker lock poisoned")

    class Fine:
        state = "open"

    app = Flask("breakers")
    breakers = {"broken": Broken(), "fine": Fine()}
    telemetry = Telemetry(settings=Settings(), targets=StateTargets(breakers=lambda: breakers)).init_app(app)
    try:
        with caplog.at_level(logging.WARNING, logger="telemetry.state.sources"):
            text = scrape(app.test_client())
    finally:
        telemetry.shutdown()
    assert sample_value(text, "sublarr_circuit_breaker_state", {"provider": "fine"}) == 1
    assert sample_value(text, "sublarr_circuit_breaker_state", {"provider": "broken"}) is None
    assert sample_value(text, "sublarr_telemetry_source_errors_total", {"source": "breakers"}) == 1
    assert "breaker 'broken': RuntimeError: breaker lock poisoned" in caplog.text
