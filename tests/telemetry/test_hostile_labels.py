"""No label value can break a scrape (issue: hostile input).

Arbitrary text, bytes and odd objects go through every label-bearing entry
point: ``telemetry.events``, the ``sublarr_metrics`` shim, the job recorder, a
worker's replayed capture, the state sources (breaker names, disk paths, the
cache's backend name, the version) and HTTP (methods, paths, route
templates). Every scrape must then answer 200 and parse with
prometheus_client's text and OpenMetrics parsers, and the accumulated
exposition must pass ``promtool check metrics``.
"""
from __future__ import annotations

import os
import subprocess

import pytest
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from harness.support import disk_used_percent, require_binary, samples, scrape
from telemetry import Settings, StateTargets, Telemetry, events, sublarr_metrics
from telemetry.labels import MAX_VALUE_CHARS, LabelSanitizer, as_text, clean_value

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
# One app accumulates series across examples, so shrinking would replay long histories: off.
EXAMPLES = settings(max_examples=60, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow])

# Text with everything Hypothesis' default leaves out: lone surrogates, controls, long runs.
any_text = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=40),
    st.text(st.characters(categories=["Cs", "Cc", "Zl", "Zp", "Cf"]), min_size=1, max_size=8),
    st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=4), st.integers(60, 200)),
    st.sampled_from(["", "other", "_overflow", "# EOF", 'a"b\\c\nd', "le", "\udcff\udcfe", "x" * 300]),
)


class _BadStr:
    def __str__(self):
        raise RuntimeError("no text for you")


hostile = st.one_of(any_text, st.binary(max_size=24), st.integers(), st.none(), st.floats(),
                    st.just(_BadStr()))


class _Breaker:
    def __init__(self, state):
        self.state = state


class _Cache:
    backend: object = "memory"

    def get_stats(self):
        return {"backend": self.backend, "hits": 1, "misses": 2, "size": 3}


def _valid_utf8(value: str) -> bool:
    value.encode("utf-8")  # raises for anything unencodable
    return len(value) <= MAX_VALUE_CHARS


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_exposition(client) -> str:
    """Scrape both formats; both parse; every label value is valid UTF-8."""
    text = scrape(client)
    for family in parse_text(text):
        for sample in family.samples:
            assert all(_valid_utf8(v) for v in sample.labels.values()), sample
    response = client.get("/metrics", headers={"Accept": OPENMETRICS})
    assert response.status_code == 200 and response.content_type.startswith("application/openmetrics-text")
    assert list(parse_openmetrics(response.get_data(as_text=True)))
    return text


def _promtool_accepts(text: str) -> None:
    promtool = require_binary("promtool")
    result = subprocess.run([promtool, "check", "metrics"], input=text.encode("utf-8"), capture_output=True,
                            timeout=60)
    output = (result.stdout + result.stderr).decode("utf-8", "replace")
    problems = [line for line in output.splitlines() if "sublarr_" in line]
    assert problems == [] and result.returncode == 0, output[-3000:]


# -- the boundary itself ----------------------------------------------------------------------

@given(hostile)
@settings(max_examples=300, deadline=None)
def test_clean_value_gives_valid_utf8_and_keeps_valid_values(value):
    text = as_text(value)
    cleaned = clean_value(text)
    assert _valid_utf8(cleaned)
    assert clean_value(cleaned) == cleaned  # idempotent: a cleaned value is never rewritten again
    if _encodable(text) and len(text) <= MAX_VALUE_CHARS:
        assert cleaned == text  # control characters and all: the formats carry them


def test_bytes_become_text_not_their_repr():
    assert as_text(b"opensubtitles") == "opensubtitles"
    assert clean_value(as_text(b"disk\xff")) == "disk\ufffd"
    assert as_text(_BadStr()) == "<_BadStr>"


def test_sanitizer_counts_each_distinct_rewritten_value_once_per_family():
    sanitizer = LabelSanitizer()
    for _ in range(3):
        assert sanitizer.clean("sublarr_a", ("ok", "bad\udcff")) == ("ok", "bad\ufffd")
    sanitizer.clean("sublarr_a", ("x" * (MAX_VALUE_CHARS + 1),))
    sanitizer.clean("sublarr_b", ("bad\udcff",))
    assert sanitizer.counts() == {"sublarr_a": 2, "sublarr_b": 1}


# -- every entry point, through a real app and its /metrics -----------------------------------

@pytest.fixture
def hostile_app(tmp_path):
    odd_dir = os.path.join(os.fsencode(tmp_path), b"media-\xff\xfe")  # a real non-UTF-8 directory name
    os.mkdir(odd_dir)
    breakers: dict = {}
    cache = _Cache()
    app = Flask("hostile_labels", static_folder=None)
    app.config["SUBLARR_VERSION"] = "1.0\udcff\x00"

    @app.get("/api/v1/séries/<int:n>")
    def series(n):
        return "ok"

    @app.get("/api/v1/status")
    def odd_status():
        return "odd", "299 SOMETHING"

    telemetry = Telemetry(settings=Settings(disk_paths=(str(tmp_path), os.fsdecode(odd_dir), "/nonexistent\udcff"),
                                            max_series=200),
                          targets=StateTargets(breakers=lambda: breakers, cache=lambda: cache))
    telemetry.init_app(app)
    yield app, telemetry, breakers, cache
    telemetry.shutdown()


def test_no_value_through_any_entry_point_breaks_a_scrape(hostile_app, tmp_path):
    app, telemetry, breakers, cache = hostile_app
    client = app.test_client()
    texts = [_check_exposition(client)]

    @EXAMPLES
    @given(provider=hostile, status=hostile, fmt=hostile, queue=hostile, function=hostile, method=any_text,
           path=any_text)
    def record_and_scrape(provider, status, fmt, queue, function, method, path):
        events.provider_searched(provider, status)
        events.provider_downloaded(provider, fmt)
        events.translation_finished(status, fmt, 1.5)
        sublarr_metrics.record_provider_search(provider, status)
        sublarr_metrics.record_provider_download(fmt, provider)
        sublarr_metrics.record_translation(fmt, status, 2.0)
        telemetry.pipeline.jobs.job_finished(queue, function, status, 0.5)
        telemetry.pipeline.replay({"events": [["provider_searched", provider, status]],
                                   "queries": [[as_text(status), 0.01]]})
        breakers[provider if isinstance(provider, (str, bytes, int)) else repr(provider)] = _Breaker("open")
        cache.backend = status
        environ = {"REQUEST_METHOD": _wsgi_text(method), "PATH_INFO": "/" + _wsgi_text(path)}
        assert client.get("/", environ_overrides=environ).status_code < 600
        texts.append(_check_exposition(client))

    record_and_scrape()
    client.get("/api/v1/séries/3")
    client.get("/api/v1/status")
    final = _check_exposition(client)
    _promtool_accepts(final)
    assert not telemetry.pipeline.callbacks.sources["disk"].health.last_error, "disk source failed as a whole"
    odd_mount = telemetry.settings.disk_paths[1]  # the directory whose name is not UTF-8
    disks = {labels["mount"]: value for labels, value in samples(final, "sublarr_disk_usage_percent")}
    assert disks == {str(tmp_path): pytest.approx(disk_used_percent(tmp_path), abs=1),
                     clean_value(odd_mount): pytest.approx(disk_used_percent(odd_mount), abs=1)}
    assert clean_value(odd_mount).endswith("media-\ufffd\ufffd")
    rewritten = {labels["family"]: value for labels, value in samples(final, "sublarr_telemetry_label_values_"
                                                                             "sanitized_total")}
    for family in ("sublarr_provider_search_total", "sublarr_disk_usage_percent", "sublarr_info"):
        assert rewritten.get(family, 0) >= 1, (family, rewritten)
    assert 'version="1.0\ufffd\x00"' in final  # the surrogate replaced, the NUL carried as is


def _wsgi_text(text: str) -> str:
    """What a WSGI server puts in environ: the raw request bytes decoded as latin-1."""
    return text.encode("utf-8", "surrogatepass").decode("latin-1")


# -- a real Prometheus ------------------------------------------------------------------------

@pytest.mark.e2e
def test_real_prometheus_scrapes_hostile_labels_with_a_padded_token_file(tmp_path, prometheus_factory):
    """Prometheus (both formats, as it negotiates) keeps scraping after hostile values, with
    the same token file, trailing whitespace and all, read by both sides."""
    from harness.support import wait_for

    token_file = tmp_path / "token"
    token_file.write_bytes(b"tok-3f9a2c71e6 \n\n")
    parsed = Settings.from_env({"SUBLARR_METRICS_TOKEN_FILE": str(token_file),
                                "SUBLARR_METRICS_LISTEN": "127.0.0.1:0"})
    app = Flask("hostile_e2e", static_folder=None)
    breakers = {b"bad\xff": _Breaker("open")}
    telemetry = Telemetry(settings=parsed, targets=StateTargets(breakers=lambda: breakers)).init_app(app)
    try:
        events.provider_searched("lone\udcff", "success")
        events.provider_searched("ctl\x00\r\n", "failed")
        events.provider_downloaded(b"bytes\xfe", "srt")
        target = f"127.0.0.1:{telemetry.listener.port}"
        job = {"job_name": "sublarr", "scrape_interval": "1s", "static_configs": [{"targets": [target]}],
               "authorization": {"type": "Bearer", "credentials_file": str(token_file)}}
        prometheus = prometheus_factory({"global": {"scrape_interval": "1s"}, "scrape_configs": [job]})

        def scraped_twice():
            up = prometheus.query('up{job="sublarr"}')
            count = prometheus.query('count_over_time(up{job="sublarr"}[1m])')
            return up and up[0]["value"][1] == "1" and count and float(count[0]["value"][1]) >= 2
        wait_for(scraped_twice, timeout=30, interval=0.5, what="two successful scrapes")
        searches = prometheus.answer("sublarr_provider_search_total")
        assert searches == [({"provider": "ctl\x00\r\n", "status": "failed"}, 1.0),
                            ({"provider": "lone\ufffd", "status": "success"}, 1.0)], searches
        assert prometheus.answer("sublarr_provider_download_total") == [
            ({"provider": "bytes\ufffd", "format": "srt"}, 1.0)]
        assert prometheus.answer("sublarr_circuit_breaker_state") == [({"provider": "bad\ufffd"}, 1.0)]
        health = prometheus.active_targets()[0]
        assert health["health"] == "up" and not health["lastError"], health
    finally:
        telemetry.shutdown()
