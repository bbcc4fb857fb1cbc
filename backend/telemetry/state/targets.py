"""What the state sources read: one typed object from the app to the callback layer.

Importing it needs only the standard library, so an app can build one before
the telemetry packages load. Given to :class:`~telemetry.Telemetry`, a field
left ``None`` is found on the app (:mod:`telemetry.discovery`); the callback
layer reads a ``None`` getter, URL or path list as "not there": that source
reports no series and no health.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Getter = Callable[[], Any]
"""A zero-argument callable returning the object read (or None while there is none),
looked up at every read, so an app factory may attach it after adopting telemetry."""


def _no_host_count(family: str) -> None:
    return None


def _call_directly(read: Callable[[], int]) -> int:
    return read()


def _web_role() -> str:
    return "web"


@dataclass(frozen=True)
class StateTargets:
    """Where the state sources find what they read.

    ``engine``, ``cache``, ``queue``, ``breakers`` and ``rq_connection`` are
    getters (``engine=lambda: db.engine``); ``breakers`` returns a mapping
    provider name -> breaker. ``count_queries`` maps the two database queue
    families to SQL; given, it replaces the host's own count functions.
    """

    engine: Getter | None = None
    cache: Getter | None = None
    queue: Getter | None = None
    breakers: Getter | None = None
    rq_connection: Getter | None = None
    redis_url: str | None = None
    disk_paths: tuple[str, ...] | None = None
    version: str | None = None
    count_queries: Mapping[str, str] | None = None
    # family -> the host's own count function, looked up at read time (None: use the SQL)
    host_count: Callable[[str], Callable[[], int] | None] = _no_host_count
    # wraps a host count call: the app context, and the query recorder's quiet mode
    host_call: Callable[[Callable[[], int]], int] = _call_directly
    # this process's role, read at collect time (shared state is read by the web role only)
    role: Callable[[], str] = _web_role


def target(getter: Getter | None) -> Any:
    """The object behind ``getter`` now, or None when there is no getter."""
    return None if getter is None else getter()
