"""Opt-in traces: request, query and Redis spans over OTLP, exemplars on the contract.

Off by default, and then this module is never imported: no instrumentation is
installed and no ``opentelemetry.instrumentation`` module is loaded (the
request span alone costs more than the whole metrics path). It is switched on
by the standard ``OTEL_TRACES_EXPORTER`` (``otlp`` or ``console``); endpoint,
headers and timeout come from ``OTEL_EXPORTER_OTLP_TRACES_*`` /
``OTEL_EXPORTER_OTLP_*``, read by the SDK's exporter itself.

The spans come from the contrib instrumentations, through their public
instrumentors only (see :class:`Tracing`):

- request spans: ``FlaskInstrumentor().instrument_app`` on the app, outside the
  metrics middleware. One SERVER span per request, continuing an incoming
  ``traceparent``, named ``METHOD route-template`` with ``http.route``. It
  skips exactly the paths the metrics skip (the metrics path, health checks,
  static files; plus ``OTEL_PYTHON_FLASK_EXCLUDED_URLS`` if set). Query
  parameter values are replaced by ``REDACTED`` (Sublarr accepts its API key
  as ``?apikey=``), as the semantic conventions ask for sensitive values.
- query spans: ``SQLAlchemyInstrumentor().instrument(engines=...)`` on the
  app's engine (forced past the instrumentation's declared ``sqlalchemy<2.1``,
  which on SQLAlchemy 2.1 needs ``greenlet``: the tracing extra installs it).
- Redis spans: ``RedisInstrumentor`` (process-wide, as redis-py offers no
  per-app hook); this module uninstalls it again on shutdown.

Each instrumentation gets its providers once; they are
:mod:`telemetry.rebind` proxies that follow the pipeline (a forked worker's
spans carry its own resource). Spans use the metrics' resource (same
``service.name`` and ``service.instance.id``) and a sampler from
``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` (default: parent-based,
ratio 1.0) behind one rule: a database or Redis call never starts a trace of
its own (scrape-time reads and background threads would otherwise send
one-span traces).

The instrumentations' own metrics (``http.server.request.duration``,
``http.server.active_requests``, ``db.client.connections.usage``) go to the
API's no-op meter provider unless ``SUBLARR_METRICS_KEEP_SEMCONV=true``, so
they cost nothing and ``/metrics`` is the same with tracing on or off.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import weakref
from typing import Any
from urllib.parse import parse_qsl

from opentelemetry import trace
from opentelemetry.metrics import NoOpMeterProvider
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
from opentelemetry.trace import SpanKind

from .catalog import HTTP_METHODS
from .http_metrics import PathFilter
from .rebind import RebindableMeterProvider, RebindableTracerProvider
from .settings import Settings

_log = logging.getLogger(__name__)

SEMCONV_OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"
EXCLUDED_URLS_VARIABLES = ("OTEL_PYTHON_FLASK_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS")
REDACTED = "REDACTED"


def require(settings: Settings) -> None:
    """Raise ImportError naming what is missing for tracing with ``settings``."""
    from opentelemetry.instrumentation.flask import FlaskInstrumentor  # noqa: F401

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
def opt_in_stable_http(environ: Any = os.environ) -> None:
    """Ask the instrumentations for the stable HTTP conventions, unless the user chose.

    The contrib instrumentations read ``OTEL_SEMCONV_STABILITY_OPT_IN`` once
    per process, when the first of them initialises; unless it already names
    ``http`` or ``http/dup``, ``http`` is added (seconds instead of
    milliseconds, ``http.route`` and ``url.path`` instead of ``http.target``).
    An instrumentation set up before the telemetry keeps the mode it read.
    """
    entries = [e.strip() for e in environ.get(SEMCONV_OPT_IN, "").split(",") if e.strip()]
    if not {"http", "http/dup"} & set(entries):
        environ[SEMCONV_OPT_IN] = ",".join([*entries, "http"])


# request spans --------------------------------------------------------------
def excluded_urls(path_filter: PathFilter, environ: Any = os.environ) -> str:
    """``path_filter`` as the Flask instrumentation's ``excluded_urls`` (comma-separated
    regular expressions searched in the request URL), plus the standard variables."""
    host = r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]*"
    patterns = [f"{host}{re.escape(path)}(?:\\?|$)" for path in sorted(path_filter.exact)]
    patterns += [f"{host}{re.escape(prefix)}" for prefix in path_filter.prefixes]
    patterns = [pattern.replace(",", "\\x2c") for pattern in patterns]  # the list separator
    for variable in EXCLUDED_URLS_VARIABLES:
        if environ.get(variable, "").strip():
            patterns.append(environ[variable].strip())
            break
    return ",".join(patterns)


def redact_query(query: str) -> str:
    """Every parameter's value replaced by ``REDACTED``; the names stay (they are not secret)."""
    pairs = parse_qsl(query, keep_blank_values=True)
    return "&".join(f"{name}={REDACTED}" for name, _ in pairs)


_URL_ATTRIBUTES = ("url.query", "http.target", "http.url", "url.full")


def redact_request_span(span: Any, environ: dict) -> None:
    """No query parameter value leaves the process: the URL attributes are rewritten.

    Runs as a Flask ``teardown_request`` function registered after the
    instrumentation's own (Flask runs them in reverse order), so the span is
    still current and recording, and it runs on every path, exceptions
    included. (The instrumentation's ``request_hook`` is too early: the
    instrumentation sets the URL attributes again after calling it.)
    """
    if not environ.get("QUERY_STRING") or not span.is_recording():
        return
    attributes = getattr(span, "attributes", None) or {}  # the SDK's ReadableSpan.attributes
    for key in _URL_ATTRIBUTES:
        value = attributes.get(key)
        if not isinstance(value, str):
            continue
        if key == "url.query":
            span.set_attribute(key, redact_query(value))
        elif "?" in value:
            head, _, query = value.partition("?")
            span.set_attribute(key, f"{head}?{redact_query(query)}")


# query and Redis spans: process-wide instrumentors ----------------------------
class _ProcessInstrumentations:
    """SQLAlchemy and Redis instrumentors are singletons of the process: one owner.

    The :class:`Tracing` bound last owns them (like a second ``instrument()`` call,
    the newest wins); their spans go through one rebindable provider.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.tracer_provider = RebindableTracerProvider()
        # Bound only while the owner keeps the instrumentations' metrics; unbound it is a no-op.
        self.meter_provider = RebindableMeterProvider()
        self.owner: "weakref.ref[Tracing] | None" = None
        self.engines: "weakref.WeakSet[Any]" = weakref.WeakSet()
        self.sqlalchemy = False  # instrumented by us
        self.redis = False

    def bind(self, tracing: "Tracing") -> None:
        with self.lock:
            self.owner = weakref.ref(tracing)
            self.tracer_provider.bind(tracing.tracer_provider)
            self.meter_provider.bind(tracing.meter_provider if tracing.settings.keep_semconv_metrics else None)
            self._instrument_redis()

    def owned_by(self, tracing: "Tracing") -> bool:
        return self.owner is not None and self.owner() is tracing

    def instrument_engine(self, engine: Any, commenter: bool) -> None:
        with self.lock:
            if engine in self.engines:
                return
            try:
                from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
            except ImportError as exc:
                _log.warning("sublarr telemetry: no query spans, a package is missing (%s)", exc)
                return
            instrumentor = SQLAlchemyInstrumentor()
            if instrumentor.is_instrumented_by_opentelemetry:
                if not self.sqlalchemy:
                    _log.info("sublarr telemetry: SQLAlchemy is already instrumented elsewhere; "
                              "query spans go to that tracer provider")
                    return
                instrumentor.uninstrument()  # again below, with this engine added
            self.engines.add(engine)
            try:
                # skip_dep_check: the instrumentation declares sqlalchemy<2.1, yet works on 2.1
                # (proven by the tests); without it, it would silently do nothing there.
                instrumentor.instrument(engines=list(self.engines), tracer_provider=self.tracer_provider,
                                        meter_provider=self.meter_provider, enable_commenter=commenter,
                                        commenter_options={}, skip_dep_check=True)
            except ImportError as exc:  # SQLAlchemy 2.1 without greenlet
                self.engines.discard(engine)
                _log.warning("sublarr telemetry: no query spans (%s); install greenlet, or "
                             "sublarr-telemetry[tracing] which brings it", exc)
                return
            self.sqlalchemy = True

    def _instrument_redis(self) -> None:
        if self.redis:
            return
        try:
            import redis  # noqa: F401
            from opentelemetry.instrumentation.redis import RedisInstrumentor
        except ImportError:
            return
        instrumentor = RedisInstrumentor()
        if instrumentor.is_instrumented_by_opentelemetry:
            _log.info("sublarr telemetry: Redis is already instrumented elsewhere; "
                      "its spans go to that tracer provider")
            return
        instrumentor.instrument(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider)
        self.redis = True

    def release(self, tracing: "Tracing") -> None:
        """``tracing`` shuts down: if it owns the instrumentors, remove their hooks."""
        with self.lock:
            if not self.owned_by(tracing):
                return
            self.owner = None
            self.tracer_provider.bind(None)
            self.meter_provider.bind(None)
            if self.sqlalchemy:
                from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

                SQLAlchemyInstrumentor().uninstrument()
                self.sqlalchemy = False
                self.engines = weakref.WeakSet()
            if self.redis:
                from opentelemetry.instrumentation.redis import RedisInstrumentor

                RedisInstrumentor().uninstrument()
                self.redis = False


_process = _ProcessInstrumentations()


class Tracing:
    """The tracing of one Flask app: instruments it once; :meth:`bind` points the
    spans (and kept metrics) at a pipeline's providers, again after a fork;
    :meth:`uninstall` on shutdown."""

    def __init__(self, app: Any, settings: Settings, path_filter: PathFilter):
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        self.settings = settings
        self.tracer_provider = None
        self.meter_provider = None
        self._spans = RebindableTracerProvider()
        self._metrics = RebindableMeterProvider() if settings.keep_semconv_metrics else NoOpMeterProvider()
        self._app = weakref.ref(app)
        opt_in_stable_http()
        before = app.wsgi_app
        FlaskInstrumentor.instrument_app(
            app, tracer_provider=self._spans, excluded_urls=excluded_urls(path_filter),
            enable_commenter=settings.sql_commenter, meter_provider=self._metrics)
        # Unchanged: the app was instrumented already (opentelemetry-instrument); that one stays.
        self._wrapper = app.wsgi_app if app.wsgi_app is not before else None
        if self._wrapper is None:
            _log.info("sublarr telemetry: the Flask app is already instrumented; its request spans "
                      "go to that tracer provider")
        app.teardown_request(self._redact)  # after the instrumentation's: runs before it

    @staticmethod
    def _redact(exc: BaseException | None = None) -> None:
        from flask import request

        span = trace.get_current_span()
        if not span.is_recording():
            return
        redact_request_span(span, request.environ)
        if request.url_rule is None:  # the instrumentation names it "METHOD /raw/path": unbounded
            span.update_name(request.method if request.method in HTTP_METHODS else "HTTP")

    def bind(self, pipeline: Any) -> None:
        """Point every instrumentation at ``pipeline``'s tracer and meter providers."""
        self.tracer_provider, self.meter_provider = pipeline.tracer_provider, pipeline.meter_provider
        self._spans.bind(self.tracer_provider)
        if isinstance(self._metrics, RebindableMeterProvider):
            self._metrics.bind(self.meter_provider)
        _process.bind(self)

    def instrument_engine(self, engine: Any) -> None:
        """Query spans on ``engine`` (idempotent; the app's engine, found like the metrics find it)."""
        if engine is not None:
            _process.instrument_engine(engine, self.settings.sql_commenter)

    def uninstall(self) -> None:
        """Stop tracing: the request spans stop, the process-wide hooks are removed."""
        self._spans.bind(None)
        if isinstance(self._metrics, RebindableMeterProvider):
            self._metrics.bind(None)
        app = self._app()
        if app is not None:
            teardown = app.teardown_request_funcs.get(None, [])
            if self._redact in teardown:
                teardown.remove(self._redact)
            if self._wrapper is not None and app.wsgi_app is self._wrapper:  # nothing wrapped it since
                from opentelemetry.instrumentation.flask import FlaskInstrumentor

                FlaskInstrumentor.uninstrument_app(app)
        _process.release(self)
        self.tracer_provider = self.meter_provider = None
