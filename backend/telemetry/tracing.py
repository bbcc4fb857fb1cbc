"""Opt-in traces: request, query and Redis spans over OTLP, exemplars on the contract.

Off by default, and then this module is never imported: no instrumentation is
installed and no ``opentelemetry.instrumentation`` module is loaded (the
request span alone costs more than the whole metrics path). It is switched on
by the standard ``OTEL_TRACES_EXPORTER`` (``otlp`` or ``console``); endpoint,
headers and timeout come from ``OTEL_EXPORTER_OTLP_TRACES_*`` /
``OTEL_EXPORTER_OTLP_*``, read by the SDK's exporter itself.

What it installs on a Flask app (see :class:`Tracing`):

- request spans: a WSGI wrapper outside the metrics middleware, built on
  opentelemetry-instrumentation-wsgi's request and response helpers (the ones
  the Flask instrumentation uses; its own package cannot be installed beside
  SDK 1.45.2, see the README). One SERVER span per request, continuing an
  incoming ``traceparent``, named ``METHOD route-template``, with the stable
  HTTP semantic conventions. It skips exactly the paths the metrics skip (the
  metrics path, health checks, static files). Query strings are not recorded
  (Sublarr accepts its API key as ``?apikey=``).
- query spans: opentelemetry-instrumentation-sqlalchemy's ``EngineTracer`` on
  the app's engine only. Used directly, it needs no forcing on SQLAlchemy 2.1
  and leaves ``create_engine``/``Engine.connect`` unpatched, so the telemetry's
  own scrape-time database engine is never traced. The SQL commenter is off
  unless ``SUBLARR_METRICS_SQL_COMMENTER`` asks for it.
- Redis spans: ``RedisInstrumentor`` (process-wide, as redis-py offers no
  per-app hook); this module uninstalls it again on shutdown.

Spans use the metrics' resource (same ``service.name`` and
``service.instance.id``) and a sampler from ``OTEL_TRACES_SAMPLER`` /
``OTEL_TRACES_SAMPLER_ARG`` (default: parent-based, ratio 1.0) behind one
rule: a database or Redis call never starts a trace of its own (scrape-time
reads and background threads would otherwise send one-span traces).

The instrumentations' own metrics (``http.server.request.duration``,
``http.server.active_requests``, ``db.client.connections.usage``) are dropped
by views unless ``SUBLARR_METRICS_KEEP_SEMCONV=true`` (see
:data:`telemetry.provider.INSTRUMENTATION_SCOPES`). Those recorded here (per
request, per pool checkout) are then not even recorded: a dropped SDK call
still costs several microseconds.
"""
from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable
from timeit import default_timer
from typing import Any

from opentelemetry import context, trace
from opentelemetry.instrumentation import wsgi as otel_wsgi
from opentelemetry.instrumentation._semconv import (
    HTTP_DURATION_HISTOGRAM_BUCKETS_NEW,
    _get_schema_url,
    _get_schema_url_for_signal_types,
    _OpenTelemetrySemanticConventionStability,
    _OpenTelemetryStabilitySignalType,
    _StabilityMode,
)
from opentelemetry.instrumentation.utils import _start_internal_or_server_span
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import HTTP_ROUTE
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.http import (
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST,
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE,
    get_custom_headers,
    sanitize_method,
)

from . import catalog
from .http_metrics import PathFilter, _request_context_var
from .provider import INSTRUMENTATION_SCOPES
from .settings import Settings

_log = logging.getLogger("telemetry")

REQUEST_SCOPE = "telemetry.tracing"
"""Instrumentation scope of the request spans (and their kept http.server.* metrics)."""
SQLALCHEMY_SCOPE = "opentelemetry.instrumentation.sqlalchemy"
SEMCONV_OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"

assert REQUEST_SCOPE in INSTRUMENTATION_SCOPES and SQLALCHEMY_SCOPE in INSTRUMENTATION_SCOPES


def require(settings: Settings) -> None:
    """Raise ImportError naming what is missing for ``settings``' trace exporters."""
    if "otlp" in settings.traces_exporters:
        _otlp_span_exporter_class(settings.traces_protocol)


# provider and sampler ------------------------------------------------------
class NoClientRoots(Sampler):
    """``delegate``, except that a CLIENT span without a parent is dropped.

    The Redis instrumentation is process-wide, so the telemetry's own
    scrape-time reads (cache stats, queue counts) and an app's background
    threads would each start a one-span trace. Traces start at requests (or
    at spans the app starts itself).
    """

    def __init__(self, delegate: Sampler):
        self.delegate = delegate

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None,
                      trace_state=None) -> SamplingResult:
        if kind is SpanKind.CLIENT and not trace.get_current_span(parent_context).get_span_context().is_valid:
            return SamplingResult(Decision.DROP)
        return self.delegate.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"NoClientRoots{{{self.delegate.get_description()}}}"


def build_sampler(name: str, ratio: float = 1.0) -> Sampler:
    """The standard ``OTEL_TRACES_SAMPLER`` names (validated by :mod:`telemetry.settings`)."""
    roots = {"always_on": ALWAYS_ON, "always_off": ALWAYS_OFF, "traceidratio": TraceIdRatioBased(ratio)}
    if name.startswith("parentbased_"):
        sampler = ParentBased(roots[name.removeprefix("parentbased_")])
    else:
        sampler = roots[name]
    return NoClientRoots(sampler)


def _otlp_span_exporter_class(protocol: str):
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise ImportError(f"OTLP traces over gRPC need opentelemetry-exporter-otlp-proto-grpc ({exc})") from exc
        return OTLPSpanExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter


def build_span_exporter(name: str, protocol: str) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    return _otlp_span_exporter_class(protocol)()


def build_tracer_provider(settings: Settings, resource: Any) -> TracerProvider:
    """A tracer provider with the metrics' ``resource``; batch export per exporter.

    The SDK's batch processor empties its queue in a forked child, so a child
    never sends its parent's spans; the Flask extension gives the child its
    own provider (and ``service.instance.id``) when it rebuilds the pipeline.
    Batching follows the standard ``OTEL_BSP_*`` variables.
    """
    provider = TracerProvider(resource=resource,
                              sampler=build_sampler(settings.traces_sampler, settings.traces_sampler_ratio))
    for name in settings.traces_exporters:
        provider.add_span_processor(BatchSpanProcessor(build_span_exporter(name, settings.traces_protocol)))
    return provider


# semantic conventions -------------------------------------------------------
def stable_http_mode() -> _StabilityMode:
    """Opt the process into the stable HTTP conventions before any instrumentor reads them.

    The contrib instrumentations read ``OTEL_SEMCONV_STABILITY_OPT_IN`` once per
    process; unless it already names ``http`` or ``http/dup``, ``http`` is added
    (seconds instead of milliseconds, ``server.address`` instead of
    ``net.peer.name``). The request spans use the stable conventions in any case.
    """
    stability = _OpenTelemetrySemanticConventionStability
    if not stability._initialized:
        entries = [e.strip() for e in os.environ.get(SEMCONV_OPT_IN, "").split(",") if e.strip()]
        if not {"http", "http/dup"} & set(entries):
            os.environ[SEMCONV_OPT_IN] = ",".join([*entries, "http"])
    stability._initialize()
    mode = stability._get_opentelemetry_stability_opt_in_mode(_OpenTelemetryStabilitySignalType.HTTP)
    if mode is _StabilityMode.DEFAULT:
        _log.warning("sublarr telemetry: an OpenTelemetry instrumentation was set up before the telemetry "
                     "with the old HTTP conventions; query and Redis spans keep them (set %s=http)",
                     SEMCONV_OPT_IN)
    return _StabilityMode.HTTP_DUP if mode is _StabilityMode.HTTP_DUP else _StabilityMode.HTTP


# request spans --------------------------------------------------------------
def _current_rule() -> str | None:
    ctx = _request_context_var.get(None) if _request_context_var is not None else None
    rule = ctx.request.url_rule if ctx is not None else None
    return rule.rule if rule is not None else None


def _without_query(attributes: dict) -> None:
    """Query strings may carry secrets (Sublarr's ``?apikey=``): never record them."""
    attributes.pop("url.query", None)
    for key in ("http.target", "http.url"):
        value = attributes.get(key)
        if isinstance(value, str) and "?" in value:
            attributes[key] = value.split("?", 1)[0]


class TracingMiddleware:
    """WSGI wrapper starting one span per request; a pass-through until bound.

    It sits outside :class:`~telemetry.http_metrics.HttpMetricsMiddleware`, so
    the metrics middleware times the app without the tracing overhead and
    finds the request span current when it notes the value (the exemplar).
    """

    def __init__(self, wsgi_app: Callable, path_filter: PathFilter, mode: _StabilityMode = _StabilityMode.HTTP):
        self.wsgi_app = wsgi_app
        self.path_filter = path_filter
        self.mode = mode
        self.tracer = None
        self.duration = None
        self.active = None
        # Header capture (OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_*): read once, not per request.
        self.request_headers = bool(get_custom_headers(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST))
        self.response_headers = bool(get_custom_headers(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE))

    def bind(self, tracer_provider: Any, meter_provider: Any = None) -> None:
        """Spans from ``tracer_provider``; http.server.* metrics into ``meter_provider`` if given."""
        if tracer_provider is None:
            self.tracer = self.duration = self.active = None
            return
        from opentelemetry.semconv._incubating.metrics.http_metrics import create_http_server_active_requests

        schema_url = _get_schema_url(self.mode)
        duration = active = None
        if meter_provider is not None:
            meter = meter_provider.get_meter(REQUEST_SCOPE, catalog.VERSION, schema_url=schema_url)
            duration = meter.create_histogram(
                "http.server.request.duration", unit="s", description="Duration of HTTP server requests.",
                explicit_bucket_boundaries_advisory=HTTP_DURATION_HISTOGRAM_BUCKETS_NEW)
            active = create_http_server_active_requests(meter)
        self.duration, self.active = duration, active
        self.tracer = tracer_provider.get_tracer(REQUEST_SCOPE, catalog.VERSION, schema_url=schema_url)

    def __call__(self, environ: dict, start_response: Callable):
        tracer = self.tracer
        if tracer is None or self.path_filter.excluded(environ.get("PATH_INFO", "")):
            return self.wsgi_app(environ, start_response)
        method = sanitize_method(str(environ.get("REQUEST_METHOD", "")).strip())
        name = "HTTP" if method == "_OTHER" else method
        # Attributes after the sampling decision: a sampled-out request pays only
        # for the context and a non-recording span (no sampler here reads them).
        span, token = _start_internal_or_server_span(
            tracer=tracer, span_name=name, start_time=None, context_carrier=environ,
            context_getter=otel_wsgi.wsgi_getter)
        recording, duration, active = span.is_recording(), self.duration, self.active
        mode, attributes, active_attributes = self.mode, {}, None
        response_headers = self.response_headers
        if recording or duration is not None:
            attributes = otel_wsgi.collect_request_attributes(environ, mode)
            _without_query(attributes)
        if recording:
            span.set_attributes(attributes)
            if self.request_headers and span.kind is SpanKind.SERVER:
                span.set_attributes(otel_wsgi.collect_custom_request_headers_attributes(environ))
        if active is not None:
            active_attributes = otel_wsgi._parse_active_request_count_attrs(attributes, mode)
            active.add(1, active_attributes)
        named = []

        def traced_start_response(status, headers, exc_info=None):
            if not named:  # the first call, inside Flask's request context
                named.append(True)
                rule = _current_rule()
                if rule is not None:
                    attributes[HTTP_ROUTE] = rule
                    span.update_name(f"{name} {rule}")
                    span.set_attribute(HTTP_ROUTE, rule)
            otel_wsgi.add_response_attributes(span, status, headers, attributes, mode)
            if recording and response_headers and span.kind is SpanKind.SERVER:
                span.set_attributes(otel_wsgi.collect_custom_response_headers_attributes(headers))
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        start = default_timer()
        try:
            with trace.use_span(span, end_on_exit=False):
                if not recording and duration is None:
                    return self.wsgi_app(environ, start_response)
                return self.wsgi_app(environ, traced_start_response)
        except BaseException as exc:
            attributes[ERROR_TYPE] = type(exc).__qualname__
            span.set_attribute(ERROR_TYPE, type(exc).__qualname__)
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            raise
        finally:
            # Ends when the app returns, like the Flask instrumentation's span (ended in
            # teardown_request): Flask has built the body by then. Ending here, in the
            # caller's context, also keeps the context token valid under test clients
            # that close the body elsewhere.
            if duration is not None:
                duration.record(max(default_timer() - start, 0.0),
                                otel_wsgi._parse_duration_attrs(attributes, _StabilityMode.HTTP),
                                context=trace.set_span_in_context(span))
            if active is not None:
                active.add(-1, active_attributes)
            span.end()
            if token is not None:
                context.detach(token)


# query and Redis spans ------------------------------------------------------
def _engine_tracer(engine: Any, tracer_provider: Any, meter_provider: Any, commenter: bool) -> Any:
    """``meter_provider`` None: the pool usage counter is a no-op (the views would drop it, and a
    dropped SDK ``add`` still costs microseconds on every checkout and checkin)."""
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.instrumentation.sqlalchemy.version import __version__
    from opentelemetry.semconv.metrics import MetricInstruments

    schema_url = _get_schema_url_for_signal_types(
        [_OpenTelemetryStabilitySignalType.DATABASE, _OpenTelemetryStabilitySignalType.HTTP])
    tracer = tracer_provider.get_tracer(SQLALCHEMY_SCOPE, __version__, schema_url=schema_url)
    if meter_provider is None:
        from opentelemetry.metrics import NoOpMeterProvider

        meter_provider = NoOpMeterProvider()
    meter = meter_provider.get_meter(SQLALCHEMY_SCOPE, __version__, schema_url=schema_url)
    usage = meter.create_up_down_counter(  # as SQLAlchemyInstrumentor creates it
        name=MetricInstruments.DB_CLIENT_CONNECTIONS_USAGE, unit="connections",
        description="The number of connections that are currently in state described by the state attribute.")
    return EngineTracer(tracer, engine, usage, enable_commenter=commenter, commenter_options={},
                        enable_attribute_commenter=False)


def _remove_engine_tracer(engine: Any, engine_tracer: Any) -> None:
    """Remove one EngineTracer's listeners from ``engine`` (not every tracer's, as
    ``SQLAlchemyInstrumentor.uninstrument`` would)."""
    from opentelemetry.instrumentation.sqlalchemy import engine as sa_engine
    from sqlalchemy import event

    shared = (sa_engine._after_cur_exec, sa_engine._handle_error)
    registry = sa_engine.EngineTracer._remove_event_listener_params
    for entry in list(registry):
        target_ref, identifier, func = entry
        if target_ref() is not engine:
            continue
        if getattr(func, "__self__", None) is engine_tracer or func in shared:
            if event.contains(engine, identifier, func):
                event.remove(engine, identifier, func)
            registry.remove(entry)


_redis_lock = threading.Lock()
_redis_owner: "weakref.ref[Tracing] | None" = None


def _redis_installed() -> bool:
    try:
        import redis  # noqa: F401
    except ImportError:
        return False
    return True


class Tracing:
    """The tracing of one Flask app: installs the request wrapper once, then
    binds spans (and kept metrics) to a pipeline's providers; :meth:`bind`
    again after a fork, :meth:`uninstall` on shutdown."""

    def __init__(self, app: Any, settings: Settings, path_filter: PathFilter):
        self.settings = settings
        self.middleware = TracingMiddleware(app.wsgi_app, path_filter, stable_http_mode())
        app.wsgi_app = self.middleware
        self._lock = threading.RLock()
        self._engines: list[list] = []  # [engine, EngineTracer or None]
        self.tracer_provider = None
        self.meter_provider = None

    def bind(self, pipeline: Any) -> None:
        """Point everything at ``pipeline``'s tracer and meter providers."""
        with self._lock:
            self.tracer_provider, self.meter_provider = pipeline.tracer_provider, pipeline.meter_provider
            kept = self.meter_provider if self.settings.keep_semconv_metrics else None
            self.middleware.bind(self.tracer_provider, kept)
            for entry in self._engines:
                self._attach(entry)
        self._instrument_redis()

    def instrument_engine(self, engine: Any) -> None:
        """Query spans on ``engine`` (idempotent; the app's engine, found like the metrics find it)."""
        if engine is None:
            return
        with self._lock:
            if any(entry[0] is engine for entry in self._engines):
                return
            entry = [engine, None]
            self._engines.append(entry)
            if self.tracer_provider is not None:
                self._attach(entry)

    def _attach(self, entry: list) -> None:
        engine, old = entry
        if old is not None:
            _remove_engine_tracer(engine, old)
        kept = self.meter_provider if self.settings.keep_semconv_metrics else None
        entry[1] = _engine_tracer(engine, self.tracer_provider, kept, self.settings.sql_commenter)

    def _instrument_redis(self) -> None:
        global _redis_owner
        if not _redis_installed():
            return
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        instrumentor = RedisInstrumentor()
        with _redis_lock:
            if instrumentor.is_instrumented_by_opentelemetry:
                if _redis_owner is None:
                    _log.info("sublarr telemetry: Redis is already instrumented elsewhere; "
                              "its spans go to that tracer provider")
                    return
                instrumentor.uninstrument()  # ours: a previous bind, or another app's (the newest wins)
            instrumentor.instrument(tracer_provider=self.tracer_provider)
            _redis_owner = weakref.ref(self)

    def uninstall(self) -> None:
        """Stop tracing: the request wrapper passes through, hooks are removed."""
        global _redis_owner
        with self._lock:
            self.middleware.bind(None)
            for entry in self._engines:
                if entry[1] is not None:
                    _remove_engine_tracer(entry[0], entry[1])
                    entry[1] = None
            self.tracer_provider = self.meter_provider = None
        with _redis_lock:
            if _redis_owner is not None and _redis_owner() is self:
                from opentelemetry.instrumentation.redis import RedisInstrumentor

                RedisInstrumentor().uninstrument()
                _redis_owner = None
