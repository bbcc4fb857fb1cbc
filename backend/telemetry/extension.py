"""Flask adoption: ``init_telemetry(app)`` or ``Telemetry().init_app(app)``.

Importing this module needs only Flask. The OpenTelemetry SDK and
prometheus_client are imported when an app is initialised, so a host whose
telemetry packages are missing still starts, and its metrics path answers
``503`` with the reason instead of failing silently.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import warnings
import weakref
from typing import TYPE_CHECKING, Any

from . import events
from .catalog import SCRAPE_ENVIRON_KEY
from .settings import LISTEN_ACCEPTED, Settings, SettingsError
from .state.targets import StateTargets

if TYPE_CHECKING:  # pragma: no cover
    from flask import Flask

_log = logging.getLogger(__name__)

EXTENSION_KEY = "sublarr_telemetry"
METRICS_ENDPOINT = "sublarr_telemetry_metrics"


_current: "weakref.ref[Telemetry] | None" = None


def current_telemetry() -> "Telemetry | None":
    """The telemetry initialised last in this process (for module-level shims)."""
    return _current() if _current is not None else None


class TelemetryWarning(RuntimeWarning):
    """Something about the telemetry set-up deserves attention but is not fatal."""


class TelemetryConfigError(SettingsError):
    """The app and the telemetry settings cannot work together (``variable``, ``value`` and
    ``accepted`` say which setting, as for any :class:`SettingsError`)."""

    def __init__(self, variable: str, value: str, accepted: str, problem: str):
        self.variable = variable
        self.value = value
        self.accepted = accepted
        ValueError.__init__(self, f"{variable}={value!r} {problem}: accepted values are {accepted}")


class Telemetry:
    """The telemetry of one Flask app.

    Dependencies are injected: ``settings`` (default: from the environment),
    ``targets`` (what the state families read; a field left ``None`` is found
    on the app), ``registry`` (default: a fresh ``CollectorRegistry``; a
    registry passed in may hold other collectors too, so its scrapes take
    prometheus_client's encoder rather than the cached one), ``resource``,
    ``providers`` (names the provider label accepts up front) and ``clock``
    (the HTTP duration clock, for tests).
    """

    def __init__(self, app: "Flask | None" = None, *, settings: Settings | None = None,
                 targets: StateTargets | None = None, registry: Any = None, resource: Any = None,
                 providers: tuple[str, ...] = (), clock: Any = None):
        self.settings = settings
        self.targets = targets if targets is not None else StateTargets()
        self._clock = clock
        self._registry = registry
        self._resource = resource
        self._providers = tuple(providers)
        self.pipeline = None
        self._middleware = None
        self._app_ref = None
        self._auth = None
        self.listener = None
        self.unavailable_reason: str | None = None
        self.tracing = None  # telemetry.tracing.Tracing when OTEL_TRACES_EXPORTER is set
        self._tracing_wanted = False
        self._engine = None
        self.worker_bound = False  # set by telemetry.rq_worker when this process runs an RQ worker
        self.metrics_path: str | None = None  # the path that serves the exposition in this app
        self.host_metrics_paths: tuple[str, ...] = ()  # the app's own routes serving generate_metrics()
        self._late_host_route: bool | None = None
        if app is not None:
            self.init_app(app)

    # adoption -----------------------------------------------------------
    def init_app(self, app: "Flask") -> "Telemetry":
        existing = app.extensions.get(EXTENSION_KEY)
        if existing is not None:
            warnings.warn(f"sublarr telemetry is already initialised on app {app.name!r}; "
                          "the second call does nothing", TelemetryWarning, stacklevel=3)
            return existing
        settings = self.settings or Settings.from_env()
        self.settings = settings
        self.host_metrics_paths = () if settings.path_explicit else _host_metrics_routes(app)
        app.extensions[EXTENSION_KEY] = self
        global _current
        _current = weakref.ref(self)
        if not settings.enabled:
            self.unavailable_reason = "disabled by SUBLARR_METRICS_ENABLED"
        elif not settings.exporters:
            self.unavailable_reason = "no exporter (OTEL_METRICS_EXPORTER=none)"
        else:
            self._tracing_wanted = _tracing_available(settings)
            try:
                self.pipeline = self._build_pipeline(app)
            except ImportError as exc:
                self.unavailable_reason = (f"a telemetry package is missing ({exc}); "
                                           "install sublarr-telemetry with its dependencies")
                _log.warning("sublarr telemetry is off: %s", self.unavailable_reason)
        if self.pipeline is not None:
            self._instrument(app)
        elif settings.tracing:
            _log.warning("sublarr telemetry: OTEL_TRACES_EXPORTER is set but tracing needs the metrics "
                         "pipeline, which is off (%s)", self.unavailable_reason)
        if self.pipeline is not None and not settings.serve_metrics:
            self.unavailable_reason = ("metrics are pushed over OTLP, not served here "
                                       f"(OTEL_METRICS_EXPORTER={','.join(settings.exporters) or 'none'})")
        from .auth import ScrapeAuth
        self._auth = ScrapeAuth.from_settings(settings)
        if settings.listen is not None:
            from .listener import MetricsListener
            host, port = settings.listen
            try:
                self.listener = MetricsListener(host, port, settings.path, self.respond).start()
            except (OSError, UnicodeError) as exc:  # busy port, unknown host, no such interface
                self.shutdown()
                app.extensions.pop(EXTENSION_KEY, None)
                raise TelemetryConfigError(
                    "SUBLARR_METRICS_LISTEN", _listen_text(host, port),
                    f"{LISTEN_ACCEPTED} of an address of this host that no other program listens on",
                    f"cannot be listened on ({getattr(exc, 'strerror', None) or exc})") from None
            _log.info("sublarr telemetry: metrics on http://%s:%d%s", host, self.listener.port, settings.path)
        else:
            self._serve_in_app(app, settings)
        return self

    def _serve_in_app(self, app: "Flask", settings: Settings) -> None:
        """Where the app serves the exposition; never a second, open door.

        - The app already has a metrics route (Sublarr's ``/api/v1/metrics``
          behind its API key, serving ``generate_metrics()``) and no path was
          set: that route stays the only one; nothing is added.
        - ``SUBLARR_METRICS_PATH`` names an existing route: telemetry serves
          that route's endpoint, so the app's own before-request hooks (its
          auth) still guard it.
        - Otherwise: a new route at the path (``/metrics`` by default).
        """
        if self.host_metrics_paths:
            _log.info("sublarr telemetry: the app serves metrics itself at %s (generate_metrics()); "
                      "no route added", ", ".join(self.host_metrics_paths))
            return
        self.metrics_path = settings.path
        existing = [rule for rule in app.url_map.iter_rules() if rule.rule == settings.path]
        if existing:
            for rule in existing:
                app.view_functions[rule.endpoint] = self._metrics_view
            _log.info("sublarr telemetry: serving metrics at the app's route %s (endpoint %s)",
                      settings.path, ", ".join(rule.endpoint for rule in existing))
            return
        app.add_url_rule(settings.path, endpoint=METRICS_ENDPOINT,
                         view_func=self._metrics_view, methods=["GET"])

    @property
    def role(self) -> str:
        """``web`` or ``worker`` (SUBLARR_METRICS_ROLE, else detected: a process
        running a telemetry RQ worker is a worker). Only the web role reports
        shared state (queue, database, Redis), so processes never double it."""
        if self.settings is not None and self.settings.role != "auto":
            return self.settings.role
        return "worker" if self.worker_bound else "web"

    def mark_scrape(self) -> None:
        """The current request serves the exposition (the app's own route calling
        ``generate_metrics()``): neither count it nor show it as in progress."""
        from flask import has_request_context, request

        if not has_request_context():
            return
        environ = request.environ
        environ[SCRAPE_ENVIRON_KEY] = True
        middleware = self._middleware
        if middleware is not None:
            middleware.metrics.in_flight_ids.discard(id(environ))

    def _build_pipeline(self, app: "Flask"):
        from . import discovery
        from .pipeline import build_pipeline

        given, settings = self.targets, self.settings
        engine = self._engine = discovery.engine_getter(app, given.engine)
        found = dataclasses.replace(
            given,
            cache=discovery.attribute_getter(app, "cache_backend", given.cache),
            queue=discovery.attribute_getter(app, "job_queue", given.queue),
            breakers=discovery.breakers_getter(app, given.breakers),
            redis_url=given.redis_url or settings.redis_url,
            disk_paths=tuple(given.disk_paths or settings.disk_paths or discovery.disk_mounts()),
            version=discovery.version_of(app, given.version),
            role=lambda: self.role)
        if given.count_queries is None:  # the host's own count functions, else the default SQL
            found = dataclasses.replace(found, host_count=lambda family: discovery.host_count(app, family))

        def targets_for(queries):
            def host_call(read):
                with app.app_context(), queries.quiet():  # telemetry's reads are not the app's queries
                    return read()
            return dataclasses.replace(found, engine=lambda: self._engine_found(queries, engine()),
                                       host_call=host_call)
        return build_pipeline(self.settings, targets_for, registry=self._registry,
                              resource=self._resource, providers=self._providers,
                              tracing=self._tracing_wanted)

    def _engine_found(self, queries: Any, engine: Any) -> Any:
        """Attach query listeners (and query spans) the first time an engine is seen."""
        _instrumented(queries, engine)
        if engine is not None and self.tracing is not None:
            self.tracing.instrument_engine(engine)
        return engine

    def _instrument(self, app: "Flask") -> None:
        from .http_metrics import HttpMetricsMiddleware, PathFilter

        settings = self.settings
        patterns = [*(self.host_metrics_paths or (settings.path,)), *settings.exclude_paths]
        if settings.exclude_static and app.static_url_path:
            patterns.append(app.static_url_path.rstrip("/") + "/*")
        path_filter = PathFilter.from_patterns(patterns)
        self._middleware = HttpMetricsMiddleware(
            app.wsgi_app, self.pipeline.http, path_filter,
            route_for_environ=lambda environ: _match_route(app, environ),
            unmeasured_routes=() if settings.listen is not None else (settings.path,),
            **({"clock": self._clock} if self._clock is not None else {}))
        app.wsgi_app = self._middleware
        if self.pipeline.tracer_provider is not None:
            from .tracing import Tracing

            self.tracing = Tracing(app, settings, path_filter)  # wraps the metrics middleware
            self.tracing.bind(self.pipeline)
            self.tracing.instrument_engine(self._engine())
        events.install(self.pipeline.subtitles)
        self._app_ref = weakref.ref(app)
        _after_fork_rebuild(self)

    def _rebuild_after_fork(self) -> None:
        """In a forked child (gunicorn --preload): a pipeline of its own.

        The parent's readers never export from here (see
        :class:`~telemetry.otlp_reader.ProcessLocalReader`); the child gets a new
        provider, a new ``service.instance.id`` and empty recorders, so nothing
        the parent recorded is counted twice.
        """
        old, app = self.pipeline, self._app_ref()
        if old is None or app is None or old.owner_pid == os.getpid():
            return
        if self.worker_bound:  # an RQ work-horse: it captures for its worker (telemetry.rq_worker)
            return
        if self.listener is not None:  # the port belongs to the parent
            self.listener = None
            _log.warning("sublarr telemetry: SUBLARR_METRICS_LISTEN serves the parent process only; "
                         "forked workers should push over OTLP")
        try:
            new = self._build_pipeline(app)
        except Exception:  # never break the child; it keeps serving without metrics
            _log.exception("sublarr telemetry: rebuilding after fork failed; metrics are off in pid %s",
                           os.getpid())
            self.pipeline, self.unavailable_reason = None, "rebuilding after fork failed"
            self._middleware.metrics = _NoHttpMetrics()
            if self.tracing is not None:
                self.tracing.uninstall()
            return
        self.pipeline = new
        self._middleware.metrics = new.http
        if self.tracing is not None:  # spans under the child's own resource and providers
            self.tracing.bind(new)
        if events.active_sink() is old.subtitles:
            events.install(new.subtitles)
        old.queries.uninstrument()
        old.leave_registry()
        try:
            old.meter_provider.shutdown()
            if old.tracer_provider is not None:  # its queue was emptied at the fork: sends nothing
                old.tracer_provider.shutdown()
        except Exception:  # the parent's provider is dead weight here; never fatal
            pass

    # serving ------------------------------------------------------------
    def render(self, accept: str | None = None, accept_encoding: str | None = None):
        """The exposition for one scrape (status, body, headers)."""
        from .exposition import unavailable

        if self.pipeline is None or not self.settings.serve_metrics:
            return unavailable(self.unavailable_reason or "not initialised")
        return self.pipeline.renderer.render(accept, accept_encoding)

    def respond(self, accept: str | None, accept_encoding: str | None, authorization: str | None):
        """One scrape: the auth check, then the exposition (or why there is none)."""
        from .exposition import unauthorized

        if not self._auth.allows(authorization):
            return unauthorized(self._auth.challenge())
        return self.render(accept, accept_encoding)

    def _metrics_view(self):
        from flask import Response, abort, current_app, request

        if self._late_host_route is None:  # the URL map is final once requests are served
            self._late_host_route = (not self.settings.path_explicit
                                     and bool(_host_metrics_routes(current_app)))
            if self._late_host_route:
                _log.warning("sublarr telemetry: the app registered its own metrics route after "
                             "init_telemetry(app); %s answers 404 so that it is the only one",
                             self.metrics_path)
        if self._late_host_route:
            abort(404)

        exposition = self.respond(request.headers.get("Accept"), request.headers.get("Accept-Encoding"),
                                  request.headers.get("Authorization"))
        return Response(exposition.body, status=exposition.status, headers=list(exposition.headers))

    # lifecycle ----------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return self.pipeline is not None

    @property
    def meter_provider(self):
        return self.pipeline.meter_provider if self.pipeline else None

    @property
    def registry(self):
        return self.pipeline.registry if self.pipeline else None

    @property
    def tracer_provider(self):
        """The tracer provider of the request, query and Redis spans (None when tracing is off),
        for spans of the app's own: ``telemetry.tracer_provider.get_tracer(__name__)``."""
        return self.pipeline.tracer_provider if self.pipeline else None

    def shutdown(self) -> None:
        """Flush and stop readers; events go nowhere afterwards."""
        if self.listener is not None:
            self.listener.stop()
            self.listener = None
        if self.tracing is not None:
            self.tracing.uninstall()
        if self.pipeline is not None:
            self.pipeline.shutdown()


TARGET_KEYWORDS = ("engine", "cache", "queue", "breakers", "version", "count_queries", "redis_url",
                   "disk_paths")
"""The :class:`StateTargets` fields ``init_telemetry`` also takes one by one (objects or getters)."""


def init_telemetry(app: "Flask", **options: Any) -> Telemetry:
    """Adopt telemetry on ``app`` in one call; see :class:`Telemetry` for options.

    The targets may also be given one by one, as keywords named like the fields
    of :class:`StateTargets` (``count_queries=``, ``redis_url=``, ``disk_paths=``;
    ``engine=``, ``cache=``, ``queue=`` and ``breakers=`` take the object itself
    or a getter), instead of ``targets=``.
    """
    existing = app.extensions.get(EXTENSION_KEY)
    if existing is not None:
        warnings.warn(f"sublarr telemetry is already initialised on app {app.name!r}; "
                      "the second call does nothing", TelemetryWarning, stacklevel=2)
        return existing
    loose = {name: options.pop(name) for name in TARGET_KEYWORDS if name in options}
    if loose:
        if options.get("targets") is not None:
            raise TypeError(f"init_telemetry() takes targets= or {', '.join(sorted(loose))}=, not both")
        options["targets"] = _targets_from_keywords(**loose)
    return Telemetry(**options).init_app(app)


def _targets_from_keywords(*, engine: Any = None, cache: Any = None, queue: Any = None, breakers: Any = None,
                           disk_paths: Any = None, **plain: Any) -> StateTargets:
    from .discovery import getter_for

    return StateTargets(engine=getter_for(engine), cache=getter_for(cache), queue=getter_for(queue),
                        breakers=getter_for(breakers),
                        disk_paths=None if disk_paths is None else tuple(disk_paths), **plain)


class _NoHttpMetrics:
    """Stands in for the HTTP recorder when a child could not build its pipeline."""

    exemplars = False

    def __init__(self):
        self.in_flight_ids: set[int] = set()

    def note(self, key, seconds) -> None:
        pass


def _after_fork_rebuild(telemetry: "Telemetry") -> None:
    """Register the child-side rebuild without keeping ``telemetry`` alive."""
    if not hasattr(os, "register_at_fork"):
        return
    ref = weakref.ref(telemetry)

    def rebuild():
        instance = ref()
        if instance is not None:
            instance._rebuild_after_fork()
    os.register_at_fork(after_in_child=rebuild)


def _tracing_available(settings: Settings) -> bool:
    """Tracing asked for and its packages importable; else a warning, and metrics only."""
    if not settings.tracing:
        return False
    try:
        from . import tracing
        tracing.require(settings)
    except ImportError as exc:
        _log.warning("sublarr telemetry: tracing is off, a package is missing (%s); "
                     "install sublarr-telemetry[tracing]", exc)
        return False
    return True


def _instrumented(queries: Any, engine: Any) -> Any:
    """Attach query listeners the first time an engine is seen (idempotent)."""
    if engine is not None:
        queries.instrument(engine)
    return engine


def _host_metrics_routes(app: "Flask | None") -> tuple[str, ...]:
    """The app's own metrics routes: fixed paths whose last segment is ``metrics``
    (Sublarr's ``/api/v1/metrics``), other than telemetry's."""
    if app is None:
        return ()
    return tuple(sorted(rule.rule for rule in app.url_map.iter_rules()
                        if rule.endpoint != METRICS_ENDPOINT and not rule.arguments
                        and rule.rule.rstrip("/").rsplit("/", 1)[-1] == "metrics"))


def _listen_text(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _match_route(app: "Flask", environ: dict) -> str:
    """Route template for ``environ`` by matching the URL map (error path only)."""
    from .catalog import UNMATCHED_ENDPOINT

    try:
        rule, _ = app.url_map.bind_to_environ(environ).match(return_rule=True)
    except Exception:
        return UNMATCHED_ENDPOINT
    return rule.rule
