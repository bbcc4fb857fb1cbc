"""Automatic HTTP metrics: a WSGI middleware with no SDK call per request.

Why this shape: one OpenTelemetry SDK ``record`` costs several microseconds and
contends on SDK locks under threads, while appending a tuple to a deque is
atomic and nearly free. The request path therefore only notes
``(method, endpoint, status, seconds)``; the notes are drained into the
duration histogram and the request counts when a reader collects (inside the
SDK's collect, before it reads its storages), or by the request that finds the
buffer full, so memory stays bounded even when nobody scrapes.

The route template is read in the ``start_response`` wrapper, while Flask's
request context is still active; an unhandled exception that escapes Flask
(``PROPAGATE_EXCEPTIONS``) is counted as ``500`` with the route found by
matching the URL map again, on that rare path only.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from . import catalog
from .catalog import HTTP_METHODS, OTHER_METHOD, UNMATCHED_ENDPOINT

try:  # Flask keeps the active request context in this context variable.
    from flask.globals import _cv_request as _request_context_var
except ImportError:  # pragma: no cover - a Flask without it falls back to the proxy
    _request_context_var = None

_perf_counter = time.perf_counter
_Key = tuple[str, str, str]

DEFAULT_BUFFER_LIMIT = 20_000


def normalize_method(method: str) -> str:
    """The method itself when standard, else ``_OTHER`` (keeps the label bounded)."""
    return method if method in HTTP_METHODS else OTHER_METHOD


def current_route() -> str:
    """Route template of the active Flask request, or ``<unmatched>``."""
    if _request_context_var is not None:
        ctx = _request_context_var.get(None)
        rule = ctx.request.url_rule if ctx is not None else None
    else:  # pragma: no cover
        from flask import has_request_context, request
        rule = request.url_rule if has_request_context() else None
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
        return path in self.exact or (bool(self.prefixes) and path.startswith(self.prefixes))


class HttpMetrics:
    """Owns the three HTTP families and the buffer the middleware fills."""

    def __init__(self, meter: Meter, buffer_limit: int = DEFAULT_BUFFER_LIMIT):
        duration = catalog.family("sublarr_http_request_duration_seconds")
        requests = catalog.family("sublarr_http_requests_total")
        in_progress = catalog.family("sublarr_http_requests_in_progress")
        self._histogram = meter.create_histogram(
            duration.instrument_name, unit=duration.unit, description=duration.description,
            explicit_bucket_boundaries_advisory=list(duration.buckets))
        meter.create_observable_counter(
            requests.instrument_name, callbacks=[self._observe_requests],
            unit=requests.unit, description=requests.description)
        meter.create_observable_gauge(
            in_progress.instrument_name, callbacks=[self._observe_in_progress],
            unit=in_progress.unit, description=in_progress.description)
        self._pending: deque[tuple[str, str, str, float]] = deque()
        self._buffer_limit = buffer_limit
        self._drain_lock = threading.Lock()
        self._counts: dict[_Key, int] = {}
        self._attributes: dict[_Key, dict[str, str]] = {}
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()

    # request path -------------------------------------------------------
    def started(self) -> None:
        with self._in_flight_lock:
            self._in_flight += 1

    def finished(self, method: str, endpoint: str, status: str, seconds: float) -> None:
        with self._in_flight_lock:
            self._in_flight -= 1
        pending = self._pending
        pending.append((method, endpoint, status, seconds))
        if len(pending) > self._buffer_limit:
            self.drain(blocking=False)

    # collection path ----------------------------------------------------
    def drain(self, blocking: bool = True) -> None:
        """Move noted requests into the histogram and the counts."""
        if not self._drain_lock.acquire(blocking):
            return
        try:
            pending, counts, attributes = self._pending, self._counts, self._attributes
            record = self._histogram.record
            while pending:
                try:
                    method, endpoint, status, seconds = pending.popleft()
                except IndexError:  # another thread emptied it
                    break
                key = (method, endpoint, status)
                attrs = attributes.get(key)
                if attrs is None:
                    attrs = attributes[key] = {"method": method, "endpoint": endpoint, "status": status}
                record(seconds, attrs)
                counts[key] = counts.get(key, 0) + 1
        finally:
            self._drain_lock.release()

    def _observe_requests(self, options: CallbackOptions) -> Iterator[Observation]:
        self.drain()
        with self._drain_lock:
            snapshot = list(self._counts.items())
        attributes = self._attributes
        return iter([Observation(count, attributes[key]) for key, count in snapshot])

    def _observe_in_progress(self, options: CallbackOptions) -> Iterator[Observation]:
        return iter([Observation(self._in_flight)])

    @property
    def in_flight(self) -> int:
        return self._in_flight


class HttpMetricsMiddleware:
    """WSGI middleware around ``app.wsgi_app`` feeding :class:`HttpMetrics`."""

    def __init__(self, wsgi_app: Callable, metrics: HttpMetrics, path_filter: PathFilter,
                 route_for_environ: Callable[[dict], str], clock: Callable[[], float] = _perf_counter):
        self.wsgi_app = wsgi_app
        self.clock = clock
        self.metrics = metrics
        self.path_filter = path_filter
        self.route_for_environ = route_for_environ

    def __call__(self, environ: dict, start_response: Callable):
        if self.path_filter.excluded(environ.get("PATH_INFO", "")):
            return self.wsgi_app(environ, start_response)
        metrics = self.metrics
        seen: list[str] = []

        def recording_start_response(status, headers, exc_info=None):
            if not seen:
                seen.append(status[:3])
                seen.append(current_route())
            return start_response(status, headers, exc_info)

        clock = self.clock
        metrics.started()
        start = clock()
        try:
            result = self.wsgi_app(environ, recording_start_response)
        except BaseException:
            seconds = clock() - start
            metrics.finished(normalize_method(environ.get("REQUEST_METHOD", "")),
                             self._route_after_error(environ), "500", seconds)
            raise
        seconds = clock() - start
        if seen:
            status, endpoint = seen
        else:  # the app returned without starting a response (not valid WSGI)
            status, endpoint = "500", self._route_after_error(environ)
        metrics.finished(normalize_method(environ.get("REQUEST_METHOD", "")), endpoint, status, seconds)
        return result

    def _route_after_error(self, environ: dict) -> str:
        try:
            return self.route_for_environ(environ)
        except Exception:
            return UNMATCHED_ENDPOINT
