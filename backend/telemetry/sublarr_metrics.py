"""Drop-in replacement for Sublarr's ``backend/metrics.py``.

Existing callers keep working: ``backend/metrics.py`` becomes
``from telemetry.sublarr_metrics import *``. What changes underneath:

- ``record_translation``, ``record_provider_search`` and
  ``record_provider_download`` report domain events (see
  :mod:`telemetry.events`).
- ``record_http_request`` and ``record_db_query`` do nothing: HTTP requests
  and queries are now measured automatically by the middleware and the
  engine listener, and counting them again by hand would double them.
- The ``collect_*`` functions do nothing: pool, cache, Redis, queue, breaker,
  process and database state are read by observable callbacks at scrape time.
- ``generate_metrics(db_path)`` renders the active telemetry's exposition.
"""
from __future__ import annotations

import logging

from . import events

_log = logging.getLogger(__name__)

try:  # the same meaning as Sublarr's flag: can metrics be produced at all
    import opentelemetry.sdk.metrics  # noqa: F401
    import prometheus_client  # noqa: F401
    METRICS_AVAILABLE = True
except ImportError:
    METRICS_AVAILABLE = False

__all__ = [
    "METRICS_AVAILABLE", "collect_cache_metrics", "collect_circuit_breaker_metrics",
    "collect_database_metrics", "collect_db_pool_metrics", "collect_queue_job_metrics",
    "collect_queue_metrics", "collect_redis_metrics", "collect_system_metrics", "generate_metrics",
    "record_db_query", "record_http_request", "record_provider_download", "record_provider_search",
    "record_translation",
]


def record_translation(status: str, fmt: str, duration: float) -> None:
    events.translation_finished(status, fmt, duration)


def record_provider_search(provider: str, status: str) -> None:
    events.provider_searched(provider, status)


def record_provider_download(provider: str, fmt: str) -> None:
    events.provider_downloaded(provider, fmt)


def record_http_request(method: str, endpoint: str, status: int, duration: float) -> None:
    """Kept for callers; requests are measured by the middleware already."""


def record_db_query(operation: str, duration: float) -> None:
    """Kept for callers; queries are measured by the engine listener already."""


def _read_at_scrape_time(*args, **kwargs) -> None:
    """Kept for callers; this state is read by observable callbacks at scrape time."""


collect_system_metrics = _read_at_scrape_time
collect_queue_metrics = _read_at_scrape_time
collect_database_metrics = _read_at_scrape_time
collect_circuit_breaker_metrics = _read_at_scrape_time
collect_db_pool_metrics = _read_at_scrape_time
collect_cache_metrics = _read_at_scrape_time
collect_redis_metrics = _read_at_scrape_time
collect_queue_job_metrics = _read_at_scrape_time


def generate_metrics(db_path: str | None = None) -> tuple[bytes, str]:
    """The exposition of the telemetry initialised last in this process.

    ``db_path`` is accepted for compatibility; the database is found through
    the app's engine. Without initialised telemetry the body says why.
    """
    from .extension import current_telemetry

    telemetry = current_telemetry()
    if telemetry is None:
        return (b"# sublarr telemetry is not initialised: call telemetry.init_telemetry(app)\n",
                "text/plain; charset=utf-8")
    telemetry.mark_scrape()  # the host's route serving this is the scrape: not an HTTP request
    exposition = telemetry.render()
    return exposition.body, dict(exposition.headers)["Content-Type"]
