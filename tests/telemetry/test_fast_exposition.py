"""The cached encoder against prometheus_client's encoders, byte for byte.

The oracle is prometheus_client itself: ``generate_latest`` and
``openmetrics.generate_latest`` rendering the same families (the generic
path), for every ``Accept`` header negotiation can answer, after random and
adversarial label values, exemplars, ``_overflow`` folds, float sums and
repeated scrapes with new and changed rows. The hot families' ``_count`` and ``_total`` come
from one snapshot, even while other threads record and drain.
"""
import math
import sys
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import Counter as CounterInstrument
from opentelemetry.sdk.metrics import Histogram as HistogramInstrument
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, TraceFlags
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from telemetry import catalog
from telemetry.cardinality import SeriesGuard
from telemetry.deferred import DeferredHistogram
from telemetry.direct import DirectSource
from telemetry.exposition import ScrapeRenderer
from telemetry.fast_exposition import CachedExposition, count_text, negotiate
from telemetry.histograms import HistogramTable, InjectingReaderMixin, ProducedHistograms

HTTP = (catalog.family("sublarr_http_request_duration_seconds"), catalog.family("sublarr_http_requests_total"))
DB = (catalog.family("sublarr_db_query_duration_seconds"), catalog.family("sublarr_db_queries_total"))
JOBS = (catalog.family("sublarr_job_duration_seconds"), catalog.family("sublarr_jobs_total"))

PROMETHEUS_2_ACCEPT = ("application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;"
                       "q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2")
PROMETHEUS_3_ACCEPT = ("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
                       "application/openmetrics-text;version=0.0.1;q=0.4,"
                       "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1")
ACCEPTS = [
    None, "", "*/*", "text/html", "garbage;;;=", PROMETHEUS_2_ACCEPT, PROMETHEUS_3_ACCEPT,
    "text/plain", "text/plain; version=0.0.4", "text/plain; version=1.0.0", "text/plain;version=2.0.0",
    *[f"text/plain; version=1.0.0; escaping={e}" for e in ("underscores", "allow-utf-8", "dots", "values", "bogus")],
    "application/openmetrics-text", "application/openmetrics-text; version=0.0.1",
    "application/openmetrics-text; version=1.0.0", "application/openmetrics-text; version=2.0.0",
    *[f"application/openmetrics-text; version=1.0.0; escaping={e}"
      for e in ("underscores", "allow-utf-8", "dots", "values", "bogus")],
    "application/openmetrics-text; version=2.0.0; escaping=allow-utf-8",
]
FAST_ACCEPTS = [None, "", PROMETHEUS_2_ACCEPT, PROMETHEUS_3_ACCEPT, "text/plain; version=1.0.0",
                "application/openmetrics-text; version=1.0.0",
                "application/openmetrics-text; version=1.0.0; escaping=allow-utf-8"]

ADVERSARIAL = ["", "_overflow", "\\", "\n", '"', '\\"', "\\n", "{", "}", ",", "=", 'a="b",c="d"', "le", "+Inf",
               "ünïcödé ✓", "\u2028", "\x00", "🙂", "# EOF", "x\r\ny"]
label_values = st.one_of(st.sampled_from(ADVERSARIAL), st.text(max_size=12))
durations = st.one_of(st.floats(min_value=0, max_value=1e9, allow_nan=False),
                      st.sampled_from([0.0, 0.005, 0.01, 1.0, 10.0, 1e7, 123456789.125, 98765432109.25, 5e-324,
                                       1e21]))


class Scraped:
    """The hot families of a pipeline plus a few SDK families, rendered both ways."""

    def __init__(self, cap: int = 1000):
        self.produced = ProducedHistograms(InstrumentationScope(catalog.METER_NAME), Resource({}))
        self.http = DeferredHistogram(*HTTP, produced=self.produced,
                                      guard=SeriesGuard(HTTP[1].name, HTTP[1].label_keys, cap, None))
        self.db = DeferredHistogram(*DB, produced=self.produced)
        self.jobs = DeferredHistogram(*JOBS, produced=self.produced)
        sdk_registry = CollectorRegistry(auto_describe=False)
        self.provider = MeterProvider(metric_readers=[PrometheusMetricReader(
            disable_target_info=True, scope_info_enabled=False, registry=sdk_registry)])
        meter = self.provider.get_meter(catalog.METER_NAME)
        meter.create_counter("sublarr_translation_total").add(3, {"status": "ok", "format": 'sr"t'})
        meter.create_histogram("sublarr_translation_duration_seconds", unit="s").record(2.5)
        meter.create_up_down_counter("sublarr_queue_size").add(-2)
        self.registry = CollectorRegistry(auto_describe=False)
        source = DirectSource(self.produced, sdk_registry)
        self.registry.register(source)
        self.fast = ScrapeRenderer(self.registry, CachedExposition(source))
        self.generic = ScrapeRenderer(self.registry)

    def both(self, accept):
        return self.fast.render(accept), self.generic.render(accept)

    def close(self):
        self.provider.shutdown()


@pytest.fixture
def scraped():
    made = []

    def make(cap=1000):
        made.append(Scraped(cap))
        return made[-1]
    yield make
    for s in made:
        s.close()


def assert_same(scraped, accepts=ACCEPTS):
    for accept in accepts:
        fast, generic = scraped.both(accept)
        assert fast.headers == generic.headers, accept
        assert fast.body == generic.body, accept


span_contexts = st.one_of(st.none(), st.builds(  # sampled ones become exemplars (OpenMetrics only)
    SpanContext, trace_id=st.integers(1, 2**128 - 1), span_id=st.integers(1, 2**64 - 1), is_remote=st.just(False),
    trace_flags=st.sampled_from([TraceFlags(TraceFlags.SAMPLED), TraceFlags(TraceFlags.DEFAULT)])))
notes = st.lists(st.tuples(st.sampled_from(["GET", "POST", "_OTHER"]), label_values, st.sampled_from(["200", "404"]),
                           durations, span_contexts), max_size=25)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scrapes=st.lists(st.tuples(notes, st.lists(st.tuples(label_values, durations), max_size=5)),
                        min_size=1, max_size=4),
       cap=st.sampled_from([2, 1000]))
def test_cached_encoder_writes_what_prometheus_client_writes(scraped, scrapes, cap):
    s = scraped(cap)
    for http_notes, db_notes in scrapes:  # repeated scrapes: new rows, changed rows, unchanged rows
        for method, endpoint, status, seconds, span_context in http_notes:
            s.http.note_with_span((method, endpoint, status), seconds, span_context)
        for operation, seconds in db_notes:
            s.db.note((operation,), seconds)
        for method, function, status, seconds, span_context in http_notes[:5]:  # jobs: exemplars too
            s.jobs.note_with_span((method, function, status), seconds, span_context)
        assert_same(s, FAST_ACCEPTS + [ACCEPTS[-1]])


def test_exemplars_end_openmetrics_bucket_lines_only(scraped):
    s = scraped()
    sampled = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, False, TraceFlags(TraceFlags.SAMPLED))
    unsampled = SpanContext(0x1, 0x2, False, TraceFlags(TraceFlags.DEFAULT))
    s.http.note_with_span(("GET", "/a", "200"), 0.07, sampled)  # bucket le="0.1"
    s.http.note_with_span(("GET", "/a", "200"), 0.3, unsampled)  # bucket le="0.5": no exemplar
    s.http.note(("GET", "/a", "200"), 3.0)
    assert_same(s)
    openmetrics = s.fast.render("application/openmetrics-text; version=1.0.0").body.decode()
    lines = [line for line in openmetrics.splitlines() if " # {" in line]
    assert len(lines) == 1, lines
    head, exemplar = lines[0].split(" # ")
    assert head == 'sublarr_http_request_duration_seconds_bucket{endpoint="/a",le="0.1",method="GET",status="200"} 1.0'
    labels, value, timestamp = exemplar.split(" ")
    assert labels == '{span_id="00f067aa0ba902b7",trace_id="4bf92f3577b34da6a3ce929d0e0e4736"}' and value == "0.07"
    assert abs(float(timestamp) - time.time()) < 60  # when it was observed, in seconds
    assert " # {" not in s.fast.render("text/plain").body.decode(), "the text format has no exemplars"


def test_every_negotiation_gives_the_generic_bytes(scraped):
    s = scraped(cap=3)
    for i, endpoint in enumerate(ADVERSARIAL):
        s.http.note(("GET", endpoint, "200"), i * 0.37)
        s.db.note((endpoint,), 1.0 / (i + 1))
    assert_same(s)
    body = s.fast.render(PROMETHEUS_2_ACCEPT).body.decode()
    assert 'endpoint="_overflow",le="0.01",method="_overflow",status="_overflow"' in body
    assert body.endswith("# EOF\n") and body.split("\n").count("# EOF") == 1


def family_blocks(text):
    """HELP line -> the family's whole text block."""
    blocks, name = {}, None
    for line in text.split("\n"):
        if line.startswith("# HELP "):
            name = line
        if name is not None and line and line != "# EOF":
            blocks[name] = blocks.get(name, "") + line + "\n"
    return blocks


def test_direct_path_writes_what_the_opentelemetry_bridge_wrote(scraped):
    """The hot families as the OTel Prometheus reader translated them before this path existed."""
    from prometheus_client import generate_latest
    from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

    class Bridge(InjectingReaderMixin, PrometheusMetricReader):
        pass
    s = scraped(cap=4)
    bridge_registry = CollectorRegistry(auto_describe=False)
    bridge = Bridge(disable_target_info=True, scope_info_enabled=False, registry=bridge_registry)
    bridge.produced = s.produced
    provider = MeterProvider(metric_readers=[bridge])
    try:
        for i, endpoint in enumerate(ADVERSARIAL):
            s.http.note(("GET", endpoint, "200"), i * 0.37)
            s.db.note((endpoint,), 1.0 / (i + 1))
            s.jobs.note(("sublarr", endpoint, "finished"), i * 11.5)
        for encode, accept in ((generate_latest, None), (generate_openmetrics, PROMETHEUS_2_ACCEPT)):
            bridged = family_blocks(encode(bridge_registry).decode())
            direct = family_blocks(s.fast.render(accept).body.decode())
            assert len(bridged) == 6
            assert {name: direct[name] for name in bridged} == bridged
    finally:
        provider.shutdown()


def test_prometheus_requests_take_the_cached_encoder():
    for accept in FAST_ACCEPTS:
        assert negotiate(accept).fast_format is not None, accept
    for accept in ("text/plain; version=1.0.0; escaping=dots", "application/openmetrics-text; version=1.0.0; "
                   "escaping=values"):
        negotiated = negotiate(accept)  # prometheus_client before 0.22 answers without an escaping
        escaped = any(f"escaping={e}" in negotiated.content_type for e in ("dots", "values"))
        assert (negotiated.fast_format is None) == escaped, accept


def test_large_counts_cross_go_exponent_threshold(scraped):
    s = scraped()
    table = s.db.table
    for _ in range(1_000_001):
        table.add(("select",), 0.5)
    s.http.note(("GET", "/x", "200"), 1e22)
    s.http.note(("GET", "/y", "200"), 98765432109.25)  # Go's exponent form (two digits since prometheus_client 0.26)
    assert_same(s, FAST_ACCEPTS)
    assert b'sublarr_db_queries_total{operation="select"} 1.000001e+06\n' in s.fast.render("").body


@given(st.integers(min_value=0, max_value=2**64))
def test_count_text_is_prometheus_clients_float_format(value):
    assert count_text(value) == floatToGoString(value)


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet=st.characters(), max_size=8))
def test_any_string_label_is_served_and_never_raises(value):
    """Lone surrogates (not UTF-8) become U+FFFD in both encoders instead of failing the scrape."""
    s = Scraped()
    try:
        s.http.note(("GET", value + "\ud800", "200"), 0.1)
        fast, generic = s.both(PROMETHEUS_2_ACCEPT)
        assert fast.body == generic.body
        assert "\ufffd" in fast.body.decode("utf-8")
    finally:
        s.close()


def test_hot_families_without_rows_are_left_out(scraped):
    s = scraped()
    assert_same(s, FAST_ACCEPTS)
    assert b"sublarr_http" not in s.fast.render("").body


# one snapshot per hot family ----------------------------------------------------------
def test_count_equals_total_on_every_scrape_while_threads_record(scraped):
    s = scraped()
    s.http.buffer_limit = 20  # request threads drain too, concurrently with the scrapes
    stop = threading.Event()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)

    def record(n):
        for i in range(30_000):
            if stop.is_set():
                return
            s.http.note(("GET", f"/r{(i + n) % 7}", "200"), 0.001 * (i % 300))

    threads = [threading.Thread(target=record, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        checked = 0
        for round_no in range(40):
            if not any(t.is_alive() for t in threads) and round_no > 4:
                break
            renderer = s.fast if round_no % 2 else s.generic
            accept = PROMETHEUS_2_ACCEPT if round_no % 4 < 2 else None
            text = renderer.render(accept).body.decode()
            totals, counts = {}, {}
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    key = frozenset(sample.labels.items())
                    if sample.name == "sublarr_http_requests_total":
                        totals[key] = sample.value
                    elif sample.name == "sublarr_http_request_duration_seconds_count":
                        counts[key] = sample.value
            assert totals == counts
            checked += len(totals)
        assert checked > 20
    finally:
        stop.set()
        for t in threads:
            t.join()
        sys.setswitchinterval(interval)


class Reader(InjectingReaderMixin, InMemoryMetricReader):
    pass


def sums(reader, name):
    data = reader.get_metrics_data()
    found = {}
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == name:
                    assert m.data.is_monotonic
                    found = {p.attributes["operation"]: (p.value, m.data.aggregation_temporality)
                             for p in m.data.data_points}
    return found


@pytest.mark.parametrize("temporality", [AggregationTemporality.CUMULATIVE, AggregationTemporality.DELTA])
def test_otlp_readers_get_the_counters_in_their_temporality(temporality):
    reader = Reader(preferred_temporality={CounterInstrument: temporality,
                                           HistogramInstrument: AggregationTemporality.CUMULATIVE})
    reader.produced = ProducedHistograms(InstrumentationScope(catalog.METER_NAME), Resource({}))
    provider = MeterProvider(metric_readers=[reader])
    queries = DeferredHistogram(*DB, produced=reader.produced)
    for _ in range(3):
        queries.note(("select",), 0.01)
    first = sums(reader, "sublarr_db_queries_total")
    queries.note(("select",), 0.01)
    queries.note(("insert",), 0.01)
    second = sums(reader, "sublarr_db_queries_total")
    third = sums(reader, "sublarr_db_queries_total")
    provider.shutdown()
    assert first == {"select": (3, temporality)}
    if temporality is AggregationTemporality.DELTA:
        assert second == {"select": (1, temporality), "insert": (1, temporality)}
        assert third == {}, "nothing new: no delta point"
    else:
        assert second == third == {"select": (4, temporality), "insert": (1, temporality)}


def test_otlp_counter_and_histogram_count_come_from_one_snapshot():
    reader = Reader()
    reader.produced = ProducedHistograms(InstrumentationScope(catalog.METER_NAME), Resource({}))
    provider = MeterProvider(metric_readers=[reader])
    table = reader.produced.add(HistogramTable(DB[0], counter_family=DB[1]))
    table.add(("update",), 0.2)
    data = reader.get_metrics_data()
    provider.shutdown()
    metrics = {m.name: m.data.data_points[0] for rm in data.resource_metrics for sm in rm.scope_metrics
               for m in sm.metrics}
    assert metrics["sublarr_db_queries_total"].value == metrics["sublarr_db_query_duration_seconds"].count == 1
    assert not math.isnan(metrics["sublarr_db_query_duration_seconds"].sum)


# a real Prometheus parses what the cached encoder serves -----------------------------
@pytest.mark.e2e
def test_real_prometheus_reads_every_series_back_exactly(prometheus_factory):
    """Prometheus negotiates (OpenMetrics, gzip), parses our bytes, and PromQL gives back
    the adversarial label values and counts we recorded, with ``_count == _total``."""
    from werkzeug.serving import make_server

    from harness.flask_apps import build_app

    app, telemetry = build_app()
    seen_headers = []
    served = app.wsgi_app

    def recording(environ, start_response):
        if environ.get("PATH_INFO") == "/metrics":
            seen_headers.append((environ.get("HTTP_ACCEPT", ""), environ.get("HTTP_ACCEPT_ENCODING", "")))
        return served(environ, start_response)
    app.wsgi_app = recording
    endpoints = ['/a"quoted"', "/back\\slash", "/new\nline", "/ünï ✓", "/plain/<int:id>"]
    for i, endpoint in enumerate(endpoints):
        for _ in range(i + 1):
            telemetry.pipeline.http.note(("GET", endpoint, "200"), 0.02 * (i + 1))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        target = f"127.0.0.1:{server.server_port}"
        prometheus = prometheus_factory({"global": {"scrape_interval": "1s"}, "scrape_configs": [
            {"job_name": "sublarr", "static_configs": [{"targets": [target]}]}]})
        from harness.support import wait_for
        wait_for(lambda: len(prometheus.query("sublarr_http_requests_total")) == len(endpoints),
                 timeout=60, what="Prometheus to scrape every series")
        totals = {r["metric"]["endpoint"]: float(r["value"][1])
                  for r in prometheus.query('sublarr_http_requests_total{method="GET",status="200"}')}
        assert totals == {endpoint: float(i + 1) for i, endpoint in enumerate(endpoints)}
        equal = prometheus.query("sublarr_http_requests_total == sublarr_http_request_duration_seconds_count")
        assert len(equal) == len(endpoints)  # every series matched on its labels, and equal
        buckets = prometheus.query('sublarr_http_request_duration_seconds_bucket{endpoint="/back\\\\slash",le="0.05"}')
        assert [float(r["value"][1]) for r in buckets] == [2.0]
        (health,) = prometheus.active_targets()
        assert health["health"] == "up", health
    finally:
        server.shutdown()
        telemetry.shutdown()
    accept, encoding = seen_headers[0]
    assert negotiate(accept).fast_format == "openmetrics" and "gzip" in encoding


def test_a_registry_passed_in_is_served_whole_and_left_clean():
    """An app's own registry may hold its own collectors: scrapes render all of it
    (prometheus_client's encoder), and shutting down takes our families out again."""
    from prometheus_client import Counter

    from harness.flask_apps import build_app

    registry = CollectorRegistry(auto_describe=True)
    Counter("app_own_events", "An application's own counter.", registry=registry).inc()
    app, telemetry = build_app(registry=registry)
    client = app.test_client()
    client.get("/api/v1/jobs/1")
    for accept in (None, PROMETHEUS_2_ACCEPT):
        text = client.get("/metrics", headers={"Accept": accept or ""}).get_data(as_text=True)
        assert "app_own_events_total 1.0" in text
        assert 'sublarr_http_requests_total{endpoint="/api/v1/jobs/<int:job_id>",method="GET",status="200"} 1.0' \
            in text
    telemetry.shutdown()
    assert [family.name for family in registry.collect()] == ["app_own_events"]


def test_a_forked_child_serves_its_families_once_from_a_shared_registry():
    """After a fork the child's new pipeline replaces the parent's in a registry passed in."""
    from harness.flask_apps import build_app
    from harness.fork import in_forked_child

    registry = CollectorRegistry(auto_describe=False)
    app, telemetry = build_app(registry=registry)
    app.test_client().get("/api/v1/jobs/1")  # the parent's request
    def child():
        client = app.test_client()
        client.get("/api/v1/jobs/2")
        client.get("/api/v1/jobs/3")
        return client.get("/metrics", headers={"Accept": PROMETHEUS_2_ACCEPT}).get_data(as_text=True)
    text = in_forked_child(child)
    telemetry.shutdown()
    assert text.count("# TYPE sublarr_http_requests counter\n") == 1
    samples = [line for line in text.splitlines() if line.startswith("sublarr_http_requests_total{")]
    assert samples == ['sublarr_http_requests_total{endpoint="/api/v1/jobs/<int:job_id>",method="GET",status="200"} 2.0']
