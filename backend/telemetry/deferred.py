"""A histogram and its matching counter, fed off the hot path.

Why: ``deque.append`` is atomic and nearly free, while any real aggregation
takes locks that request threads would contend on. Hot paths (an HTTP
request, a database statement) only note ``(label values, value)``; the notes
are moved into a :class:`~telemetry.histograms.HistogramTable` when a reader
collects or a scrape renders (both drain first), or by the caller that finds
the buffer full, so memory stays bounded even when nobody collects. The
counter is the table's row count, produced from the same snapshot as the
histogram, so the two always agree.

Exemplars (only when tracing is on, see :mod:`telemetry.tracing`): a hot path
chosen at construction calls :meth:`DeferredHistogram.note_in_context`, which
keeps the sampled span context of the moment beside the value; the drain
stores it as the bucket's exemplar, so the exemplar names the request's trace
although the value is aggregated later.
"""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from time import time_ns

from opentelemetry.trace import get_current_span

from .cardinality import standalone_guard
from .catalog import Family
from .histograms import HistogramTable, ProducedHistograms

DEFAULT_BUFFER_LIMIT = 20_000


class DeferredHistogram:
    """Histogram ``histogram_family`` plus counter ``counter_family`` with equal label sets."""

    def __init__(self, histogram_family: Family, counter_family: Family, *,
                 produced: ProducedHistograms | None = None, buffer_limit: int = DEFAULT_BUFFER_LIMIT, guard=None):
        if histogram_family.label_keys != counter_family.label_keys:
            raise ValueError(f"{histogram_family.name} and {counter_family.name} need the same labels")
        self.label_keys: Sequence[str] = histogram_family.label_keys
        # Every new label set passes the guard (cap and sanitising) at drain time.
        self._guard = guard if guard is not None else standalone_guard(counter_family)
        # Aggregated here and handed to the readers (see telemetry.histograms): an
        # SDK record per value cost more CPU than the whole request path.
        self.table = HistogramTable(histogram_family, counter_family=counter_family)
        if produced is not None:  # None: nothing reads this table (a recorder used on its own)
            produced.add(self.table, self.drain)
        self._pending: deque[tuple] = deque()  # (key, value) or (key, value, span context)
        self.buffer_limit = buffer_limit
        self._drain_lock = threading.Lock()
        self._admitted: set[tuple[str, ...]] = set()

    def note(self, key: tuple[str, ...], value: float) -> None:
        """Hot path: remember one observation (label values in ``label_keys`` order)."""
        pending = self._pending
        pending.append((key, value))
        if len(pending) > self.buffer_limit:
            self.drain(blocking=False)

    def note_in_context(self, key: tuple[str, ...], value: float) -> None:
        """Hot path with tracing on: :meth:`note` plus the current span context when sampled."""
        self.note_with_span(key, value, get_current_span().get_span_context())

    def note_with_span(self, key: tuple[str, ...], value: float, span_context) -> None:
        """:meth:`note` with the span context (the exemplar) captured earlier, kept when sampled."""
        pending = self._pending
        if span_context is not None and span_context.trace_flags.sampled:
            # The exemplar's time is the observation's, not the drain's.
            pending.append((key, value, span_context, time_ns()))
        else:
            pending.append((key, value))
        if len(pending) > self.buffer_limit:
            self.drain(blocking=False)

    def drain(self, blocking: bool = True) -> None:
        """Move noted observations into the table (histogram and count)."""
        if not self._drain_lock.acquire(blocking):
            return
        try:
            pending, admitted = self._pending, self._admitted
            add, guard = self.table.add, self._guard
            # Only what was noted before the drain started: under a flood of notes
            # a drain (and the scrape waiting on it) still ends.
            for _ in range(len(pending)):
                item = pending.popleft()
                key, value = item[0], item[1]
                if key not in admitted:
                    key = guard.admit(key)  # cap and sanitising, once per label set
                    admitted.add(key)
                if len(item) == 4:
                    add(key, value, item[2], item[3])
                else:
                    add(key, value)
        finally:
            self._drain_lock.release()

    def take_pending(self) -> list[tuple[tuple[str, ...], float]]:
        """Remove and return the raw notes (a work-horse hands them to its worker)."""
        taken = []
        while True:
            try:
                item = self._pending.popleft()
            except IndexError:
                return taken
            taken.append((item[0], item[1]))

    def discard_pending(self) -> None:
        self._pending.clear()

    @property
    def pending(self) -> int:
        return len(self._pending)
