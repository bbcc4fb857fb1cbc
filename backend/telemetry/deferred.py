"""A histogram and its matching counter, fed off the hot path.

Why: ``deque.append`` is atomic and nearly free, while any real aggregation
takes locks that request threads would contend on. Hot paths (an HTTP
request, a database statement) only note ``(label values, value)``; the notes
are moved into a :class:`~telemetry.histograms.HistogramTable` (handed to the
readers as an OpenTelemetry histogram) and into the per-label-set counts when
a reader collects (the counter's callback runs inside the SDK's collect, before
the readers receive the batch, so the histogram and the counter always agree),
or by the caller that finds the buffer full, so memory stays bounded even when
nobody collects.

Exemplars (only when tracing is on, see :mod:`telemetry.tracing`): a hot path
chosen at construction calls :meth:`DeferredHistogram.note_in_context`, which
keeps the sampled span context of the moment beside the value; the drain
stores it as the bucket's exemplar, so the exemplar names the request's trace
although the value is aggregated later.
"""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator, Sequence

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.trace import get_current_span

from .catalog import Family
from .histograms import HistogramTable

DEFAULT_BUFFER_LIMIT = 20_000


class DeferredHistogram:
    """Histogram ``histogram_family`` plus counter ``counter_family`` with equal label sets."""

    def __init__(self, meter: Meter, histogram_family: Family, counter_family: Family,
                 buffer_limit: int = DEFAULT_BUFFER_LIMIT, guard=None, produced=None):
        if histogram_family.label_keys != counter_family.label_keys:
            raise ValueError(f"{histogram_family.name} and {counter_family.name} need the same labels")
        self.label_keys: Sequence[str] = histogram_family.label_keys
        self._guard = guard
        # Aggregated here and handed to the readers (see telemetry.histograms): an
        # SDK record per value cost more CPU than the whole request path.
        self.table = HistogramTable(histogram_family)
        if produced is not None:
            produced.add(self.table)
        meter.create_observable_counter(
            counter_family.instrument_name, callbacks=[self._observe_counts],
            unit=counter_family.unit, description=counter_family.description)
        self._pending: deque[tuple] = deque()  # (key, value) or (key, value, span context)
        self.buffer_limit = buffer_limit
        self._drain_lock = threading.Lock()
        self._counts: dict[tuple[str, ...], int] = {}
        self._attributes: dict[tuple[str, ...], dict[str, str]] = {}

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
            pending.append((key, value, span_context))
        else:
            pending.append((key, value))
        if len(pending) > self.buffer_limit:
            self.drain(blocking=False)

    def drain(self, blocking: bool = True) -> None:
        """Move noted observations into the histogram and the counts."""
        if not self._drain_lock.acquire(blocking):
            return
        try:
            pending, counts, attributes = self._pending, self._counts, self._attributes
            add, keys, guard = self.table.add, self.label_keys, self._guard
            while True:
                try:
                    item = pending.popleft()
                except IndexError:
                    break
                key, value = item[0], item[1]
                attrs = attributes.get(key)
                if attrs is None:
                    if guard is not None:
                        key = guard.admit(key)
                        attrs = attributes.get(key)
                    if attrs is None:
                        attrs = attributes[key] = dict(zip(keys, key))
                add(key, value, item[2] if len(item) == 3 else None)
                counts[key] = counts.get(key, 0) + 1
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

    def _observe_counts(self, options: CallbackOptions) -> Iterator[Observation]:
        self.drain()
        with self._drain_lock:
            snapshot = list(self._counts.items())
        attributes = self._attributes
        return iter([Observation(count, attributes[key]) for key, count in snapshot])
