"""Domain events the host app reports: translations and provider calls.

Infrastructure series (HTTP, database, cache, queues) are recorded without any
call from the app. A finished translation or a provider search cannot be seen
from outside, so the app reports it here. The functions are safe to call when
telemetry is off, missing or not yet initialised: they then do nothing, and a
failure inside telemetry is logged, never raised into the caller.
"""
from __future__ import annotations

import logging
from typing import Protocol

_log = logging.getLogger(__name__)


class EventSink(Protocol):
    def translation_finished(self, status: str, fmt: str, duration: float) -> None: ...
    def provider_searched(self, provider: str, status: str) -> None: ...
    def provider_downloaded(self, provider: str, fmt: str) -> None: ...


_sink: EventSink | None = None
_failed_once: set[str] = set()


def install(sink: EventSink | None) -> None:
    """Route events to ``sink`` (the process's active telemetry), or nowhere."""
    global _sink
    _sink = sink


def active_sink() -> EventSink | None:
    return _sink


def _dispatch(name: str, *args) -> None:
    sink = _sink
    if sink is None:
        return
    try:
        getattr(sink, name)(*args)
    except Exception:  # telemetry must never break the caller
        if name not in _failed_once:
            _failed_once.add(name)
            _log.exception("sublarr telemetry: recording %s failed; further failures are not logged", name)


def translation_finished(status: str, fmt: str, duration: float) -> None:
    """A translation job ended with ``status`` (success, failed, skipped)."""
    _dispatch("translation_finished", status, fmt, duration)


def provider_searched(provider: str, status: str) -> None:
    """A provider search ended with ``status`` (success, failed, circuit_open, ...)."""
    _dispatch("provider_searched", provider, status)


def provider_downloaded(provider: str, fmt: str) -> None:
    """A subtitle file in ``fmt`` was downloaded from ``provider``."""
    _dispatch("provider_downloaded", provider, fmt)
