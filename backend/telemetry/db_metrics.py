"""Query duration and count from SQLAlchemy cursor events on the app's engine.

Works on any SQLAlchemy 2.x (including 2.1, where the contrib instrumentation
is a no-op) because it only listens to core engine events. The hot path
stamps the start time on the execution context and notes
``(operation, seconds)`` in a :class:`~telemetry.deferred.DeferredHistogram`.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from typing import Any

from . import catalog
from .deferred import DeferredHistogram

_OPERATIONS = {"select": "select", "insert": "insert", "update": "update", "delete": "delete"}
_STAMP = "_sublarr_telemetry_started"
_MAX_CACHED_STATEMENTS = 4096


class QueryMetrics:
    """Listens on engines and feeds the two query families."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter, guard=None,
                 exemplars: bool = False, produced=None):
        self.queries = DeferredHistogram(
            catalog.family("sublarr_db_query_duration_seconds"), catalog.family("sublarr_db_queries_total"),
            produced=produced, guard=guard)
        # Decided once: with tracing on, each note also keeps the current span for an exemplar.
        self._note = self.queries.note_in_context if exemplars else self.queries.note
        self._clock = clock
        self._operation_of: dict[str, str] = {}
        self._engines: list[Any] = []
        self._local = threading.local()

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """Statements this thread runs inside are not the app's: telemetry's own
        state reads (counts through the host's functions) must not count as queries."""
        self._local.quiet = True
        try:
            yield
        finally:
            self._local.quiet = False

    def instrument(self, engine: Any) -> None:
        """Attach to ``engine`` once; a second call for the same engine does nothing."""
        if any(e is engine for e in self._engines):
            return
        from sqlalchemy import event

        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)
        event.listen(engine, "handle_error", self._error)
        self._engines.append(engine)

    def instrument_all(self) -> None:
        """Listen on every engine of the process (RQ workers, whose jobs make their own)."""
        from sqlalchemy.engine import Engine

        self.instrument(Engine)

    def uninstrument(self) -> None:
        if not self._engines:
            return
        from sqlalchemy import event

        for engine in self._engines:
            event.remove(engine, "before_cursor_execute", self._before)
            event.remove(engine, "after_cursor_execute", self._after)
            event.remove(engine, "handle_error", self._error)
        self._engines.clear()

    # hot path -----------------------------------------------------------
    def _before(self, conn, cursor, statement, parameters, context, executemany):
        if context is not None and not getattr(self._local, "quiet", False):
            setattr(context, _STAMP, self._clock())

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        started = getattr(context, _STAMP, None)
        if started is not None:
            self._note((self.operation(statement),), self._clock() - started)

    def _error(self, exception_context):
        context = exception_context.execution_context
        started = getattr(context, _STAMP, None) if context is not None else None
        if started is not None:
            self._note((self.operation(exception_context.statement or ""),), self._clock() - started)

    def operation(self, statement: str) -> str:
        """select, insert, update, delete or other, from the statement's first word."""
        cached = self._operation_of.get(statement)
        if cached is not None:
            return cached
        head = statement.lstrip(" \t\r\n(")[:7].lower()
        word = head.split(None, 1)[0] if head.strip() else ""
        operation = _OPERATIONS.get(word, "other")
        if len(self._operation_of) < _MAX_CACHED_STATEMENTS:
            self._operation_of[statement] = operation
        return operation
