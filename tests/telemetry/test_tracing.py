"""Opt-in tracing: off by default (nothing installed, nothing imported), and when
on, request, query and Redis spans with the metrics' resource and exemplars on
the contract histograms, proven against the real OpenTelemetry Collector.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.net import answers_ok
from harness.support import REPO, scrape, terminate, venv_executable, wait_for
from harness.tracing import close_refapp, collector_env, collector_log, make_refapp, parse_debug_log
from telemetry import Settings, SettingsError, Telemetry

TRACE_VARIABLES = ("OTEL_TRACES_EXPORTER", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
                   "SUBLARR_METRICS_KEEP_SEMCONV", "SUBLARR_METRICS_SQL_COMMENTER")
SEMCONV_METRICS = ("http.server.request.duration", "http.server.active_requests", "db.client.connections.usage")


def traced(**overrides) -> Settings:
    """Tracing on with the console exporter (stdout, captured); tests add an in-memory processor."""
    return Settings(exporters=("prometheus",), traces_exporters=("console",)).with_overrides(**overrides)


def remember_spans(telemetry):
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def search_traffic(client):
    """A request that runs SQL and Redis (cache) calls, and a few more."""
    assert client.post("/api/v1/wanted", json={"title": "Show", "language": "de"}).status_code == 201
    assert client.post("/api/v1/wanted/1/search").status_code == 200
    assert client.get("/api/v1/series/7").status_code == 200
    assert client.get("/api/v1/nope").status_code == 404


# settings ----------------------------------------------------------------------
def test_tracing_is_off_unless_a_trace_exporter_is_named():
    assert Settings.from_env({}).tracing is False
    on = Settings.from_env({"OTEL_TRACES_EXPORTER": "otlp"})
    assert on.tracing and on.traces_exporters == ("otlp",)
    assert (on.traces_sampler, on.traces_sampler_ratio) == ("parentbased_traceidratio", 1.0)
    assert (on.keep_semconv_metrics, on.sql_commenter) == (False, False)
    assert Settings.from_env({"OTEL_TRACES_EXPORTER": "none"}).tracing is False
    assert Settings.from_env({"OTEL_TRACES_EXPORTER": "otlp", "SUBLARR_METRICS_ENABLED": "false"}).tracing is False
    ratio = Settings.from_env({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER_ARG": "0.25"})
    assert (ratio.traces_sampler, ratio.traces_sampler_ratio) == ("parentbased_traceidratio", 0.25)
    # The argument belongs to the ratio samplers only (the specification ignores it elsewhere).
    always = Settings.from_env({"OTEL_TRACES_SAMPLER": "always_on", "OTEL_TRACES_SAMPLER_ARG": "x"})
    assert always.traces_sampler == "always_on"
    grpc = Settings.from_env({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"})
    assert (grpc.traces_protocol, grpc.otlp_protocol) == ("grpc", "http/protobuf")


@pytest.mark.parametrize("variable,value,accepted", [
    ("OTEL_TRACES_EXPORTER", "zipkin", "otlp, console, none"),
    ("OTEL_TRACES_EXPORTER", "none,otlp", "'none' alone"),
    ("OTEL_TRACES_SAMPLER", "parentbased_jaeger_remote", "parentbased_traceidratio"),
    ("OTEL_TRACES_SAMPLER_ARG", "1.5", "ratio from 0 to 1"),
    ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json", "http/protobuf, grpc"),
    ("SUBLARR_METRICS_KEEP_SEMCONV", "maybe", "true"),
    ("SUBLARR_METRICS_SQL_COMMENTER", "2", "false"),
])
def test_invalid_tracing_values_name_the_variable(variable, value, accepted):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({variable: value})
    assert variable in str(caught.value) and accepted in str(caught.value)


# off: nothing installed, nothing imported, the hot path unchanged ---------------
OFF_PROBE = textwrap.dedent("""
    import json, sys
    import redis
    from flask import Flask
    from sqlalchemy import create_engine, text
    from telemetry import Telemetry
    from telemetry.deferred import DeferredHistogram
    from telemetry.http_metrics import HttpMetricsMiddleware

    app = Flask("off")
    app.db_engine = engine = create_engine("sqlite://")
    app.redis_client = redis.Redis.from_url("redis://127.0.0.1:1/0")

    @app.get("/items/<int:n>")
    def item(n):
        with engine.connect() as connection:
            return {"n": connection.execute(text("SELECT 1")).scalar()}

    telemetry = Telemetry().init_app(app)
    client = app.test_client()
    assert client.get("/items/1").status_code == 200
    assert client.get("/metrics").status_code == 200
    listeners = [listener for name in ("before_cursor_execute", "after_cursor_execute")
                 for listener in getattr(engine.dispatch, name)]
    listeners += [listener for name in ("connect", "checkout", "checkin", "close")
                  for listener in getattr(engine.pool.dispatch, name)]
    modules = {getattr(listener, "__module__", "") for listener in listeners}
    print(json.dumps({
        "instrumentation_modules": sorted(m for m in sys.modules if m.startswith("opentelemetry.instrumentation")),
        "sdk_trace_imported": "opentelemetry.sdk.trace" in sys.modules,
        "tracing_module_imported": "telemetry.tracing" in sys.modules,
        "outer_wsgi": type(app.wsgi_app).__name__,
        "inner_wsgi_is_flask": getattr(app.wsgi_app.wsgi_app, "__func__", None) is Flask.wsgi_app,
        "redis_wrapped": hasattr(redis.Redis.execute_command, "__wrapped__"),
        "pipeline_wrapped": hasattr(redis.client.Pipeline.execute, "__wrapped__"),
        "otel_engine_listeners": sorted(m for m in modules if m.startswith("opentelemetry")),
        "query_metrics_listening": any(type(getattr(l, "__self__", None)).__name__ == "QueryMetrics"
                                       for l in listeners),
        "http_note_is_plain": telemetry.pipeline.http.note.__func__ is DeferredHistogram.note,
        "query_note_is_plain": telemetry.pipeline.queries._note.__func__ is DeferredHistogram.note,
        "tracer_provider": telemetry.tracer_provider is not None,
    }))
    telemetry.shutdown()
""")


def test_off_by_default_installs_and_imports_nothing():
    env = {k: v for k, v in os.environ.items() if k not in TRACE_VARIABLES and not k.startswith("OTEL_")}
    env["PYTHONPATH"] = str(REPO / "backend")
    result = subprocess.run([sys.executable, "-c", OFF_PROBE], env=env, capture_output=True, text=True,
                            timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe == {
        "instrumentation_modules": [],
        "sdk_trace_imported": False,
        "tracing_module_imported": False,
        "outer_wsgi": "HttpMetricsMiddleware",
        "inner_wsgi_is_flask": True,
        "redis_wrapped": False,
        "pipeline_wrapped": False,
        "otel_engine_listeners": [],
        "query_metrics_listening": True,
        "http_note_is_plain": True,  # the exemplar capture is chosen at construction: off costs nothing
        "query_note_is_plain": True,
        "tracer_provider": False,
    }


# on: spans ---------------------------------------------------------------------
def test_request_query_and_redis_spans_share_the_request_trace(tmp_path, redis_url):
    import redis

    app, telemetry = make_refapp(tmp_path, traced(), redis_url)
    exporter = remember_spans(telemetry)
    client = app.test_client()
    try:
        client.post("/api/v1/wanted", json={"title": "Show", "language": "de"})
        exporter.clear()
        assert client.post("/api/v1/wanted/1/search?apikey=secret").status_code == 200
        spans = exporter.get_finished_spans()
        server = [s for s in spans if s.kind.name == "SERVER"]
        assert [s.name for s in server] == ["POST /api/v1/wanted/<int:item_id>/search"]
        root = server[0]
        assert root.parent is None
        attributes = dict(root.attributes)
        assert attributes["http.route"] == "/api/v1/wanted/<int:item_id>/search"
        assert attributes["http.response.status_code"] == 200
        assert attributes["url.path"] == "/api/v1/wanted/1/search"
        assert "secret" not in json.dumps({k: str(v) for k, v in attributes.items()})
        assert attributes["url.query"] == "apikey=REDACTED"  # names kept, values never recorded
        assert root.instrumentation_scope.name == "opentelemetry.instrumentation.flask"
        children = [s for s in spans if s is not root]
        scopes = {s.instrumentation_scope.name for s in children}
        assert scopes == {"opentelemetry.instrumentation.sqlalchemy", "opentelemetry.instrumentation.redis"}
        for child in children:
            assert child.kind.name == "CLIENT"
            assert child.context.trace_id == root.context.trace_id
            assert child.parent.span_id == root.context.span_id, child.name
        assert any(s.name.startswith("SELECT") for s in children)
        assert {"GET", "INCRBY", "SET"} <= {s.name for s in children}, sorted(s.name for s in children)
        # One resource for spans and metrics: the same service.instance.id.
        assert root.resource.attributes["service.instance.id"] == telemetry.pipeline.instance_id
        assert root.resource.attributes["service.name"] == "sublarr"

        # Not traced: the metrics path, health checks, and what a scrape reads from Redis.
        exporter.clear()
        assert client.get("/api/v1/health").status_code == 200
        scrape(client)
        assert exporter.get_finished_spans() == ()
        # A 404 without a route is named by its method only (no high-cardinality path).
        client.get("/api/v1/nope/123")
        assert [s.name for s in exporter.get_finished_spans()] == ["GET"]
        assert hasattr(redis.Redis.execute_command, "__wrapped__")
    finally:
        close_refapp(app, telemetry)
    assert not hasattr(redis.Redis.execute_command, "__wrapped__"), "shutdown uninstalls the Redis hooks"
    listeners = list(app.db_engine.dispatch.before_cursor_execute)
    assert listeners == [], "shutdown removes the query span listeners"


def test_incoming_traceparent_is_continued_and_the_ratio_applies_to_roots(tmp_path):
    from flask import Flask

    app = Flask("ratio")
    app.get("/ping/<int:n>")(lambda n: "pong")
    telemetry = Telemetry(settings=traced(traces_sampler_ratio=0.0)).init_app(app)
    exporter = remember_spans(telemetry)
    client = app.test_client()
    try:
        for n in range(20):
            client.get(f"/ping/{n}")
        assert exporter.get_finished_spans() == (), "ratio 0: no new trace is started"
        trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
        client.get("/ping/1", headers={"traceparent": f"00-{trace_id}-{parent_id}-01"})
        (span,) = exporter.get_finished_spans()
        assert (format(span.context.trace_id, "032x"), format(span.parent.span_id, "016x")) == (trace_id, parent_id)
        assert span.parent.is_remote and span.kind.name == "SERVER"
        client.get("/ping/2", headers={"traceparent": f"00-{trace_id}-{parent_id}-00"})
        assert len(exporter.get_finished_spans()) == 1, "a parent that was not sampled is followed"
    finally:
        telemetry.shutdown()


def test_query_values_are_redacted_on_every_path_and_standard_exclusions_apply(monkeypatch):
    from flask import Flask

    monkeypatch.setenv("OTEL_PYTHON_FLASK_EXCLUDED_URLS", "/internal/.*")
    app = Flask("redact")
    app.config["PROPAGATE_EXCEPTIONS"] = False
    app.add_url_rule("/search", "search", lambda: "found")

    @app.get("/boom")
    def boom():
        raise RuntimeError("failed")

    app.add_url_rule("/internal/<name>", "internal", lambda name: name)
    telemetry = Telemetry(settings=traced()).init_app(app)
    exporter = remember_spans(telemetry)
    client = app.test_client()
    try:
        assert client.get("/search?apikey=secret&q=Dune&flag").status_code == 200
        assert client.get("/boom?apikey=secret").status_code == 500
        assert client.get("/internal/x?apikey=secret").status_code == 200
        assert client.get("/metrics?apikey=secret").status_code == 200
        spans = {s.name: dict(s.attributes) for s in exporter.get_finished_spans()}
        assert set(spans) == {"GET /search", "GET /boom"}, "metrics path and OTEL_PYTHON_FLASK_EXCLUDED_URLS"
        assert spans["GET /search"]["url.query"] == "apikey=REDACTED&q=REDACTED&flag=REDACTED"
        assert spans["GET /boom"]["url.query"] == "apikey=REDACTED"
        assert spans["GET /boom"]["http.response.status_code"] == 500
    finally:
        telemetry.shutdown()
    client.get("/search?apikey=secret")
    assert len(exporter.get_finished_spans()) == 2, "no spans after shutdown"


def test_sampler_starts_no_trace_at_a_database_or_redis_call():
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind
    from telemetry.tracing import build_sampler

    provider = TracerProvider(sampler=build_sampler("parentbased_traceidratio", 1.0))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("lonely query", kind=SpanKind.CLIENT):
        pass
    with tracer.start_as_current_span("GET /x", kind=SpanKind.SERVER):
        with tracer.start_as_current_span("SELECT", kind=SpanKind.CLIENT):
            pass
    with tracer.start_as_current_span("app's own job", kind=SpanKind.INTERNAL):
        pass
    assert sorted(s.name for s in exporter.get_finished_spans()) == ["GET /x", "SELECT", "app's own job"]
    assert build_sampler("always_off").get_description() == "NoClientRoots{AlwaysOffSampler}"
    provider.shutdown()


# exemplars -----------------------------------------------------------------------
def test_exemplar_names_the_span_of_the_note_not_of_the_drain():
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from telemetry import catalog
    from telemetry.deferred import DeferredHistogram
    from telemetry.histograms import InjectingReaderMixin, ProducedHistograms

    class Reader(InjectingReaderMixin, InMemoryMetricReader):
        pass

    reader = Reader()
    reader.produced = ProducedHistograms(InstrumentationScope("sublarr"), Resource({}))
    MeterProvider(metric_readers=[reader])
    histogram = DeferredHistogram(catalog.family("sublarr_db_query_duration_seconds"),
                                  catalog.family("sublarr_db_queries_total"), produced=reader.produced)
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("request") as request_span:
        histogram.note_in_context(("select",), 0.002)  # exemplar: this request
        histogram.note(("insert",), 0.003)  # plain note: never an exemplar
    histogram.note_in_context(("update",), 0.004)  # no span: no exemplar
    with tracer.start_as_current_span("another request running the drain"):
        histogram.drain()
    points = {}
    for resource_metrics in reader.get_metrics_data().resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == "sublarr_db_query_duration_seconds":
                    points = {p.attributes["operation"]: p for p in metric.data.data_points}
    assert set(points) == {"select", "insert", "update"}
    (exemplar,) = points["select"].exemplars
    assert exemplar.trace_id == request_span.get_span_context().trace_id
    assert exemplar.span_id == request_span.get_span_context().span_id
    assert points["insert"].exemplars == [] and points["update"].exemplars == []


# the Prometheus exposition ---------------------------------------------------------
def exposition_shape(text):
    shape = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            shape.add((family.name, family.type, sample.name, frozenset(sample.labels.items())))
    return shape


def test_prometheus_exposition_is_the_same_with_tracing_on_and_off(tmp_path, redis_url):
    assert redis_url.endswith("/0")
    texts = {}
    # One after the other: domain events go to the telemetry initialised last in a process.
    for name, settings, url in (("off", Settings(exporters=("prometheus",)), redis_url),
                                ("on", traced(), redis_url[:-1] + "1")):  # its own (empty) cache
        app, telemetry = make_refapp(tmp_path, settings, url, name)
        try:
            assert (telemetry.tracing is not None) == (name == "on")
            client = app.test_client()
            search_traffic(client)
            texts[name] = scrape(client)
        finally:
            close_refapp(app, telemetry)
    off_shape, on_shape = exposition_shape(texts["off"]), exposition_shape(texts["on"])
    assert off_shape == on_shape, (off_shape ^ on_shape)
    assert any(name == "sublarr_provider_search" for name, *_ in on_shape)
    assert not any(name.startswith(("http_", "db_client")) for name, *_ in on_shape)


def test_semconv_metrics_are_kept_only_when_asked_for_in_seconds(tmp_path):
    app, telemetry = make_refapp(tmp_path, traced(keep_semconv_metrics=True))
    try:
        client = app.test_client()
        client.get("/api/v1/jobs")
        families = {f.name: f for f in text_string_to_metric_families(scrape(client))}
        duration = families["http_server_request_duration_seconds"]  # unit "s": seconds, not ms
        assert duration.type == "histogram"
        (count,) = [s for s in duration.samples if s.name.endswith("_count")]
        assert count.labels["http_route"] == "/api/v1/jobs" and count.value == 1
        assert "http_server_active_requests" in families
        assert any(name.startswith("db_client_connections_usage") for name in families)
        assert not any(name.startswith("http_server_duration") for name in families), "no millisecond copy"
        contract = families["sublarr_http_request_duration_seconds"]  # untouched: the one request, once
        assert [(s.labels, s.value) for s in contract.samples if s.name.endswith("_count")] == [
            ({"method": "GET", "endpoint": "/api/v1/jobs", "status": "200"}, 1.0)]
    finally:
        close_refapp(app, telemetry)


def test_drop_views_match_the_instrumentation_scopes_only():
    """Views, not wildcards: a histogram of the same name under the contract's scope survives."""
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from telemetry import catalog
    from telemetry.meter_provider import INSTRUMENTATION_SCOPES, build_meter_provider

    def recorded(drop_scopes):
        reader = InMemoryMetricReader()
        provider = build_meter_provider([reader], drop_scopes=drop_scopes)
        for scope in (*INSTRUMENTATION_SCOPES, catalog.METER_NAME):
            meter = provider.get_meter(scope)
            meter.create_histogram("http.server.request.duration", unit="s").record(0.1)
            meter.create_histogram("sublarr_http_request_duration_seconds", unit="s").record(
                0.1, {"method": "GET", "endpoint": "/x", "status": "200"})
        data = reader.get_metrics_data()
        provider.shutdown()
        return {(sm.scope.name, m.name) for rm in data.resource_metrics for sm in rm.scope_metrics
                for m in sm.metrics}

    assert recorded(INSTRUMENTATION_SCOPES) == {
        ("sublarr", "http.server.request.duration"), ("sublarr", "sublarr_http_request_duration_seconds")}
    kept = recorded(())
    assert {scope for scope, _ in kept} == {*INSTRUMENTATION_SCOPES, "sublarr"}


MISSING_EXTRA_PROBE = textwrap.dedent("""
    import json, logging, sys
    sys.modules["opentelemetry.instrumentation"] = None  # as if sublarr-telemetry[tracing] were not installed
    logging.basicConfig(level=logging.WARNING)
    from flask import Flask
    from telemetry import Telemetry

    app = Flask("no_extra")
    app.get("/ping")(lambda: "pong")
    telemetry = Telemetry().init_app(app)
    client = app.test_client()
    assert client.get("/ping").data == b"pong"
    text = client.get("/metrics").get_data(as_text=True)
    print(json.dumps({"tracing": telemetry.tracing is not None, "tracer_provider": telemetry.tracer_provider
                      is not None, "counted": 'sublarr_http_requests_total{endpoint="/ping"' in text}))
    telemetry.shutdown()
""")


def test_missing_tracing_packages_leave_the_metrics_running():
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(PYTHONPATH=str(REPO / "backend"), OTEL_TRACES_EXPORTER="otlp")
    result = subprocess.run([sys.executable, "-c", MISSING_EXTRA_PROBE], env=env, capture_output=True,
                            text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "tracing": False, "tracer_provider": False, "counted": True}
    assert "tracing is off, a package is missing" in result.stderr
    assert "sublarr-telemetry[tracing]" in result.stderr


# fork ------------------------------------------------------------------------------
def test_forked_child_traces_under_its_own_identity(tmp_path):
    from harness.fork import in_forked_child

    app, telemetry = make_refapp(tmp_path, traced())
    parent_provider, parent_id = telemetry.tracer_provider, telemetry.pipeline.instance_id
    def child():
        exporter = remember_spans(telemetry)
        app.test_client().get("/api/v1/jobs")
        spans = exporter.get_finished_spans()
        return {
            "new_provider": telemetry.tracer_provider is not parent_provider,
            "provider_id": telemetry.tracer_provider.resource.attributes["service.instance.id"],
            "metrics_id": telemetry.pipeline.instance_id,
            "span_ids": sorted({s.resource.attributes["service.instance.id"] for s in spans}),
            "span_scopes": sorted({s.instrumentation_scope.name for s in spans}),
        }
    report = in_forked_child(child)
    try:
        assert report["new_provider"]
        assert report["provider_id"] == report["metrics_id"] != parent_id
        assert report["span_ids"] == [report["metrics_id"]]
        # Request and query spans alike follow the child's pipeline (no instrumentation done twice).
        assert report["span_scopes"] == ["opentelemetry.instrumentation.flask",
                                         "opentelemetry.instrumentation.sqlalchemy"]
        assert telemetry.tracer_provider is parent_provider  # the parent is untouched
    finally:
        close_refapp(app, telemetry)


# the real collector ------------------------------------------------------------------
@pytest.mark.e2e
def test_spans_and_exemplars_reach_the_collector(debug_collector, tmp_path, redis_url, monkeypatch):
    for key, value in collector_env(debug_collector, OTEL_SERVICE_NAME="sublarr-traced").items():
        monkeypatch.setenv(key, value)
    app, telemetry = make_refapp(tmp_path, Settings.from_env(), redis_url)
    instance_id = telemetry.pipeline.instance_id
    try:
        client = app.test_client()
        client.post("/api/v1/wanted", json={"title": "Show", "language": "de"})
        assert client.post("/api/v1/wanted/1/search").status_code == 200
        scrape(client)  # the pull path drains too; the OTLP reader keeps its own exemplars
    finally:
        close_refapp(app, telemetry)  # flushes spans and pushes the last metrics

    def received():
        spans, metrics = parse_debug_log(collector_log(debug_collector))
        mine = [s for s in spans if s["resource"].get("service.instance.id") == instance_id]
        search = [s for s in mine if s.get("Name") == "POST /api/v1/wanted/<int:item_id>/search"]
        exemplars = [e for m in metrics if m.get("Name") == "sublarr_http_request_duration_seconds"
                     and m["resource"].get("service.instance.id") == instance_id
                     for p in m["points"] for e in p["exemplars"]]
        return (mine, metrics, search[0]) if search and exemplars else None
    spans, metrics, root = wait_for(received, timeout=30, interval=0.5, what="spans and exemplars at the collector")

    # The request span, its queries and its Redis calls: one trace, parent/child links.
    assert root["Kind"] == "Server" and root["Parent ID"] == "" and root["scope"] == "opentelemetry.instrumentation.flask"
    assert root["attributes"]["http.route"] == "/api/v1/wanted/<int:item_id>/search"
    children = [s for s in spans if s["Parent ID"] == root["ID"]]
    assert all(s["Trace ID"] == root["Trace ID"] and s["Kind"] == "Client" for s in children)
    by_scope = {}
    for span in children:
        by_scope.setdefault(span["scope"], []).append(span["Name"])
    assert any(name.startswith(("SELECT", "UPDATE")) for name in by_scope["opentelemetry.instrumentation.sqlalchemy"])
    assert {"GET", "INCRBY", "SET"} <= set(by_scope["opentelemetry.instrumentation.redis"])
    # The process's resource, the same on spans and metrics.
    assert root["resource"]["service.name"] == "sublarr-traced"
    metric_resources = {json.dumps(m["resource"], sort_keys=True) for m in metrics
                        if m["resource"].get("service.instance.id") == instance_id}
    assert metric_resources == {json.dumps(root["resource"], sort_keys=True)}

    # Exemplars: the contract histograms point at a received span of the request's trace.
    span_ids = {s["ID"] for s in spans}
    for name in ("sublarr_http_request_duration_seconds", "sublarr_db_query_duration_seconds"):
        exemplars = [e for m in metrics if m.get("Name") == name
                     and m["resource"].get("service.instance.id") == instance_id
                     for p in m["points"] for e in p["exemplars"]]
        assert exemplars, name
        assert root["Trace ID"] in {e["Trace ID"] for e in exemplars}, name
        assert {e["Span ID"] for e in exemplars} <= span_ids, name
    search_points = [p for m in metrics if m.get("Name") == "sublarr_http_request_duration_seconds"
                     for p in m["points"]
                     if p["attributes"].get("endpoint") == "/api/v1/wanted/<int:item_id>/search"
                     and p["exemplars"]]
    assert {e["Trace ID"] for p in search_points for e in p["exemplars"]} == {root["Trace ID"]}

    # Default views: no second copy of the HTTP or pool numbers.
    names = {m.get("Name") for m in metrics if m["resource"].get("service.instance.id") == instance_id}
    assert "sublarr_http_requests_total" in names
    assert not names & set(SEMCONV_METRICS), names & set(SEMCONV_METRICS)


@pytest.mark.e2e
def test_kept_semconv_metrics_reach_the_collector_in_seconds(debug_collector, tmp_path, monkeypatch):
    for key, value in collector_env(debug_collector, OTEL_SERVICE_NAME="sublarr-semconv",
                                    SUBLARR_METRICS_KEEP_SEMCONV="true").items():
        monkeypatch.setenv(key, value)
    app, telemetry = make_refapp(tmp_path, Settings.from_env())
    instance_id = telemetry.pipeline.instance_id
    try:
        client = app.test_client()
        for _ in range(3):
            assert client.get("/api/v1/jobs").status_code == 200
    finally:
        close_refapp(app, telemetry)

    def received():
        _, metrics = parse_debug_log(collector_log(debug_collector))
        mine = {m["Name"]: m for m in metrics if m["resource"].get("service.instance.id") == instance_id}
        return mine if set(SEMCONV_METRICS) <= set(mine) else None
    metrics = wait_for(received, timeout=30, interval=0.5, what="the semantic-convention metrics")
    duration = metrics["http.server.request.duration"]
    assert (duration["Unit"], duration["DataType"]) == ("s", "Histogram")
    assert duration["points"][-1]["attributes"]["http.route"] == "/api/v1/jobs"
    assert metrics["db.client.connections.usage"]["scope"] == "opentelemetry.instrumentation.sqlalchemy"
    assert "http.server.duration" not in metrics  # the millisecond histogram of the old conventions
    assert "sublarr_http_request_duration_seconds" in metrics


@pytest.mark.e2e
def test_gunicorn_workers_trace_under_their_own_instance(debug_collector, tmp_path):
    """--preload forks after the app (and its tracer provider) exist: each worker's spans
    carry that worker's service.instance.id, the one its metrics carry."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    from harness.support import free_port

    gunicorn = venv_executable("gunicorn")
    port, service = free_port(), "sublarr-traced-gunicorn"
    env = dict(os.environ, **collector_env(debug_collector, OTEL_SERVICE_NAME=service, OTEL_METRICS_EXPORTER="otlp"),
               SUBLARR_DATA_DIR=str(tmp_path), SUBLARR_SIM_LATENCY_SCALE="0", PYTHONPATH=str(REPO / "backend"))
    env.pop("SUBLARR_DATABASE_URL", None)
    env.pop("SUBLARR_REDIS_URL", None)
    log = open(tmp_path / "gunicorn.log", "w")
    server = subprocess.Popen([str(gunicorn), "--preload", "-w", "2", "--threads", "2", "-b", f"127.0.0.1:{port}",
                               "refapp.wsgi:app"], env=env, stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers_ok(base + "/api/v1/health"), timeout=30, what="gunicorn to serve")
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda i: requests.get(f"{base}/api/v1/jobs/{i}", timeout=10).status_code,
                                     range(40)))
        assert set(statuses) == {404}  # no such jobs: still a routed request with a query
    finally:
        terminate(server, timeout=30)  # workers flush spans and push metrics on exit
        log.close()

    def received():
        spans, metrics = parse_debug_log(collector_log(debug_collector))
        served = {}  # instance -> requests counted by its metrics (last cumulative value)
        for m in metrics:
            if m["resource"].get("service.name") == service and m.get("Name") == "sublarr_http_requests_total":
                instance = m["resource"]["service.instance.id"]
                served[instance] = sum(float(p.get("value", 0)) for p in m["points"])
        server_spans = [s for s in spans if s["resource"].get("service.name") == service
                        and s["Name"] == "GET /api/v1/jobs/<int:job_id>"]
        by_instance = {}
        for span in server_spans:
            instance = span["resource"]["service.instance.id"]
            by_instance[instance] = by_instance.get(instance, 0) + 1
        return (by_instance, served) if len(server_spans) == 40 and sum(served.values()) == 40 else None
    spans_by_instance, served = wait_for(received, timeout=30, interval=0.5, what="40 request spans and their metrics")
    # Per process: as many request spans under its service.instance.id as its metrics counted.
    assert spans_by_instance == {instance: int(n) for instance, n in served.items() if n}
    assert 1 <= len(spans_by_instance) <= 2
    assert "Traceback" not in (tmp_path / "gunicorn.log").read_text()


@pytest.mark.e2e
def test_exemplars_on_metrics_reach_prometheus_and_name_received_spans(debug_collector, prometheus_factory, tmp_path,
                                                                        monkeypatch):
    """The direct path: Prometheus (exemplar storage on) scrapes OpenMetrics from /metrics and
    stores exemplars whose trace and span ids are those of request spans at the real collector."""
    import threading
    import time

    from werkzeug.serving import make_server

    for key, value in collector_env(debug_collector, OTEL_SERVICE_NAME="sublarr-exemplars",
                                    OTEL_METRICS_EXPORTER="prometheus").items():
        monkeypatch.setenv(key, value)
    app, telemetry = make_refapp(tmp_path, Settings.from_env())
    instance_id = telemetry.pipeline.instance_id
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    started = time.time() - 5
    try:
        prometheus = prometheus_factory(
            {"global": {"scrape_interval": "1s"},
             "scrape_configs": [{"job_name": "sublarr", "static_configs": [
                 {"targets": [f"127.0.0.1:{server.server_port}"]}]}]},
            flags=["--enable-feature=exemplar-storage"])
        client = app.test_client()
        client.post("/api/v1/wanted", json={"title": "Show", "language": "de"})
        for _ in range(3):
            assert client.post("/api/v1/wanted/1/search").status_code == 200

        def stored(metric):
            def read():
                found = prometheus.api("query_exemplars", query=metric, start=started, end=time.time() + 60)
                exemplars = [e for series in found for e in series["exemplars"]]
                return exemplars or None
            return read
        http = wait_for(stored("sublarr_http_request_duration_seconds_bucket"), timeout=60,
                        what="request exemplars in Prometheus")
        queries = wait_for(stored("sublarr_db_query_duration_seconds_bucket"), timeout=30,
                           what="query exemplars in Prometheus")
    finally:
        server.shutdown()
        close_refapp(app, telemetry)  # flushes the spans to the collector

    def received():
        spans, _ = parse_debug_log(collector_log(debug_collector))
        mine = [s for s in spans if s["resource"].get("service.instance.id") == instance_id]
        return mine if any(s["Kind"] == "Server" for s in mine) else None
    spans = wait_for(received, timeout=30, interval=0.5, what="the request spans at the collector")
    requests_ = {(s["Trace ID"], s["ID"]) for s in spans if s["Kind"] == "Server"}
    traces = {s["Trace ID"] for s in spans}
    for exemplar in http:
        labels = exemplar["labels"]
        assert (labels["trace_id"], labels["span_id"]) in requests_, labels
        assert exemplar["timestamp"] >= started
    assert {e["labels"]["trace_id"] for e in queries} <= traces
