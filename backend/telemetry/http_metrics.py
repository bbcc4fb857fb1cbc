"""Automatic HTTP metrics: a WSGI middleware with no SDK call per request.

The request path only notes ``(method, endpoint, status, seconds)`` in a
:class:`~telemetry.deferred.DeferredHistogram`, which feeds the duration
histogram and the request counter when a reader collects or a scrape renders.

The route template is read in the ``start_response`` wrapper, from the
request Flask keeps in the environ while its request context is active; an
unhandled exception that escapes Flask (``PROPAGATE_EXCEPTIONS``) is counted
as ``500`` with the route found by matching the URL map again, on that rare
path only.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator

from flask import has_request_context, request
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.trace import get_current_span

from . import catalog
from .catalog import HTTP_METHODS, OTHER_METHOD, SCRAPE_ENVIRON_KEY, UNMATCHED_ENDPOINT
from .deferred import DEFAULT_BUFFER_LIMIT, DeferredHistogram

_perf_counter = time.perf_counter
_REPEATED_SLASHES = re.compile("/{2,}")


_METHODS = {method: method for method in HTTP_METHODS}


_NOT_FLASK = object()


def current_route() -> str:
    """Route template of the active Flask request, or ``<unmatched>`` (Flask's public request proxy)."""
    rule = request.url_rule if has_request_context() else None
    return rule.rule if rule is not None else UNMATCHED_ENDPOINT


def route_of(environ: dict) -> str:
    """Route template of the Flask request serving ``environ``, or ``<unmatched>``.

    Werkzeug documents that a request object puts itself in the environ as
    ``werkzeug.request`` (``populate_request``, on by default and so for
    Flask's request), and Flask documents ``Request.url_rule``: a dict lookup
    and an attribute, measured ~0.7 us per request cheaper than the ``request``
    proxy. When the environ holds no Flask request there (something built a
    plain werkzeug Request from it later), the proxy answers.
    """
    rule = getattr(environ.get("werkzeug.request"), "url_rule", _NOT_FLASK)
    if rule is _NOT_FLASK:
        return current_route()
    return rule.rule if rule is not None else UNMATCHED_ENDPOINT


class PathFilter:
    """Decides from PATH_INFO alone which requests are not measured at all."""

    def __init__(self, exact: Iterable[str], prefixes: Iterable[str]):
        self.exact = frozenset(exact)
        self.prefixes = tuple(sorted(set(prefixes)))

    @classmethod
    def from_patterns(cls, patterns: Iterable[str]) -> "PathFilter":
        exact, prefixes = [], []
        for pattern in patterns:
            if pattern.endswith("*"):
                prefixes.append(pattern[:-1])
            else:
                exact.append(pattern)
        return cls(exact, prefixes)

    def excluded(self, path: str) -> bool:
        """Also true for another spelling the router accepts: werkzeug merges
        repeated slashes, so ``//metrics`` reaches the metrics route."""
        if "//" in path:
            path = _REPEATED_SLASHES.sub("/", path)
        return path in self.exact or (bool(self.prefixes) and path.startswith(self.prefixes))


class HttpMetrics:
    """Owns the three HTTP families; the middleware reports to it."""

    def __init__(self, meter: Meter, buffer_limit: int = DEFAULT_BUFFER_LIMIT, guard=None,
                 exemplars: bool = False, produced=None):
        in_progress = catalog.family("sublarr_http_requests_in_progress")
        self.requests = DeferredHistogram(
            catalog.family("sublarr_http_request_duration_seconds"), catalog.family("sublarr_http_requests_total"),
            produced=produced, buffer_limit=buffer_limit, guard=guard)
        meter.create_observable_gauge(
            in_progress.instrument_name, callbacks=[self._observe_in_progress],
            unit=in_progress.unit, description=in_progress.description)
        self.note = self.requests.note
        # Decided once: with tracing on, the middleware also keeps the request span for an
        # exemplar, read while the span is current (the Flask instrumentation ends it in teardown).
        self.exemplars = exemplars
        self.note_with_span = self.requests.note_with_span
        # Requests being served, by id of their WSGI environ: set.add and
        # set.discard are single atomic operations, so no lock is needed.
        self.in_flight_ids: set[int] = set()

    def drain(self) -> None:
        self.requests.drain()

    def _observe_in_progress(self, options: CallbackOptions) -> Iterator[Observation]:
        return iter([Observation(len(self.in_flight_ids))])

    @property
    def in_flight(self) -> int:
        return len(self.in_flight_ids)


class HttpMetricsMiddleware:
    """WSGI middleware around ``app.wsgi_app`` feeding :class:`HttpMetrics`."""

    def __init__(self, wsgi_app: Callable, metrics: HttpMetrics, path_filter: PathFilter,
                 route_for_environ: Callable[[dict], str], clock: Callable[[], float] = _perf_counter,
                 unmeasured_routes: Iterable[str] = ()):
        self.wsgi_app = wsgi_app
        # Routes never measured however their URL was spelled (the metrics route).
        self.unmeasured_routes = frozenset(unmeasured_routes)
        self.clock = clock
        self.metrics = metrics
        self.path_filter = path_filter
        self.route_for_environ = route_for_environ

    def __call__(self, environ: dict, start_response: Callable):
        if self.path_filter.excluded(environ.get("PATH_INFO", "")):
            return self.wsgi_app(environ, start_response)
        metrics = self.metrics
        exemplars = metrics.exemplars
        seen: list = []

        def recording_start_response(status, headers, exc_info=None):
            if not seen:
                seen.append(status[:3])
                seen.append(route_of(environ))
                if exemplars:
                    seen.append(get_current_span().get_span_context())
            return start_response(status, headers, exc_info)

        clock, in_flight, token = self.clock, metrics.in_flight_ids, id(environ)
        method = _METHODS.get(environ.get("REQUEST_METHOD"), OTHER_METHOD)
        in_flight.add(token)
        start = clock()
        try:
            result = self.wsgi_app(environ, recording_start_response)
        except BaseException:
            seconds = clock() - start
            in_flight.discard(token)
            metrics.note((method, self._route_after_error(environ), "500"), seconds)
            raise
        seconds = clock() - start
        in_flight.discard(token)
        if environ.get(SCRAPE_ENVIRON_KEY):  # the app's own route served the exposition
            return result
        if not seen:  # the app returned without starting a response (not valid WSGI)
            metrics.note((method, self._route_after_error(environ), "500"), seconds)
        elif seen[1] in self.unmeasured_routes:  # the metrics route, however its URL was spelled
            pass
        elif exemplars:
            metrics.note_with_span((method, seen[1], seen[0]), seconds, seen[2])
        else:
            metrics.note((method, seen[1], seen[0]), seconds)
        return result

    def _route_after_error(self, environ: dict) -> str:
        try:
            return self.route_for_environ(environ)
        except Exception:
            return UNMATCHED_ENDPOINT
