"""A histogram and its matching counter, fed off the hot path.

Why: one OpenTelemetry SDK ``record`` costs several microseconds and takes SDK
locks that threads contend on, while ``deque.append`` is atomic and nearly
free. Hot paths (an HTTP request, a database statement) only note
``(label values, value)``; the notes are moved into the SDK histogram and the
per-label-set counts when a reader collects (the counter's callback runs
inside the SDK's collect, before the storages are read, so the histogram and
the counter always agree), or by the caller that finds the buffer full, so
memory stays bounded even when nobody collects.
"""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator, Sequence

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from .catalog import Family

DEFAULT_BUFFER_LIMIT = 20_000


class DeferredHistogram:
    """Histogram ``histogram_family`` plus counter ``counter_family`` with equal label sets."""

    def __init__(self, meter: Meter, histogram_family: Family, counter_family: Family,
                 buffer_limit: int = DEFAULT_BUFFER_LIMIT, guard=None):
        if histogram_family.label_keys != counter_family.label_keys:
            raise ValueError(f"{histogram_family.name} and {counter_family.name} need the same labels")
        self.label_keys: Sequence[str] = histogram_family.label_keys
        self._guard = guard
        self._histogram = meter.create_histogram(
            histogram_family.instrument_name, unit=histogram_family.unit,
            description=histogram_family.description,
            explicit_bucket_boundaries_advisory=list(histogram_family.buckets))
        meter.create_observable_counter(
            counter_family.instrument_name, callbacks=[self._observe_counts],
            unit=counter_family.unit, description=counter_family.description)
        self._pending: deque[tuple[tuple[str, ...], float]] = deque()
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

    def drain(self, blocking: bool = True) -> None:
        """Move noted observations into the histogram and the counts."""
        if not self._drain_lock.acquire(blocking):
            return
        try:
            pending, counts, attributes = self._pending, self._counts, self._attributes
            record, keys, guard = self._histogram.record, self.label_keys, self._guard
            while True:
                try:
                    key, value = pending.popleft()
                except IndexError:
                    break
                attrs = attributes.get(key)
                if attrs is None:
                    if guard is not None:
                        key = guard.admit(key)
                        attrs = attributes.get(key)
                    if attrs is None:
                        attrs = attributes[key] = dict(zip(keys, key))
                record(value, attrs)
                counts[key] = counts.get(key, 0) + 1
        finally:
            self._drain_lock.release()

    def take_pending(self) -> list[tuple[tuple[str, ...], float]]:
        """Remove and return the raw notes (a work-horse hands them to its worker)."""
        taken = []
        while True:
            try:
                taken.append(self._pending.popleft())
            except IndexError:
                return taken

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
