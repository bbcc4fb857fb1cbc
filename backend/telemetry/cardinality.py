"""A per-family cap on distinct label sets.

The SDK keeps every label set it ever saw for the life of the process. Label
values here are already bounded one by one (route templates, closed sets,
capped learned sets), but their product can still be large, so each family
also has a cap on label sets: past it, new sets are folded into one series
whose labels all read ``_overflow``, the folded recordings are counted in
``sublarr_telemetry_series_overflow_total{family}``, and the first fold of a
family is logged once. Checks happen off the hot path where the recorder
allows it (at drain time for HTTP and queries).

A guard is also where label values are made safe to expose: the first time
it sees a label set it passes it through the pipeline's
:class:`~telemetry.labels.LabelSanitizer` (see :mod:`telemetry.labels`).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from . import catalog
from .catalog import OVERFLOW
from .labels import LabelSanitizer

_log = logging.getLogger(__name__)
DEFAULT_MAX_SERIES = 1000


class OverflowCounter:
    """The self-metric shared by every guard of one pipeline.

    Register it after every other instrument: callbacks run in registration
    order, and the HTTP and query counts are folded while their own callbacks
    drain, so this one must observe after them.
    """

    def __init__(self):
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def register(self, meter: Meter) -> None:
        family = catalog.family("sublarr_telemetry_series_overflow_total")
        meter.create_observable_counter(family.instrument_name, callbacks=[self._observe],
                                        unit=family.unit, description=family.description)

    def watch(self, family: str) -> None:
        """A guarded family reads 0 until its first fold, so 'no overflow' is visible."""
        with self._lock:
            self._counts.setdefault(family, 0)

    def add(self, family: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[family] = self._counts.get(family, 0) + amount

    def _observe(self, options: CallbackOptions):
        with self._lock:
            return [Observation(n, {"family": name}) for name, n in self._counts.items()]


class SeriesGuard:
    """Admits label-value tuples of one family up to ``cap`` distinct ones, sanitised.

    ``admit`` returns the label values to record: the sanitised ones for an
    admitted set (remembered, so a set is cleaned once), or the overflow set.
    """

    def __init__(self, family: str, label_keys: Sequence[str], cap: int, overflow: OverflowCounter | None,
                 sanitizer: LabelSanitizer | None = None):
        self.family = family
        self.cap = cap
        self.overflow_key = tuple(OVERFLOW for _ in label_keys)
        self._seen: dict[tuple, tuple] = {}
        self._sanitizer = sanitizer if sanitizer is not None else LabelSanitizer()
        self._lock = threading.Lock()
        self._counter = overflow
        self._warned = False
        if overflow is not None:
            overflow.watch(family)
        if sanitizer is not None:
            sanitizer.watch(family)

    def admit(self, key: tuple) -> tuple:
        admitted = self._seen.get(key)
        if admitted is not None:
            return admitted
        with self._lock:
            admitted = self._seen.get(key)
            if admitted is not None:
                return admitted
            if len(self._seen) < self.cap or not key:
                admitted = self._seen[key] = self._sanitizer.clean(self.family, key)
                return admitted
        if self._counter is not None:
            self._counter.add(self.family)
        if not self._warned:
            self._warned = True
            _log.warning("sublarr telemetry: %s reached its cap of %d label sets; new ones are folded into "
                         "the _overflow series (SUBLARR_METRICS_MAX_SERIES raises the cap)", self.family, self.cap)
        return self.overflow_key


def standalone_guard(family: catalog.Family) -> SeriesGuard:
    """A guard for a recorder built outside a pipeline: still capped and sanitised, not counted."""
    return SeriesGuard(family.name, family.label_keys, DEFAULT_MAX_SERIES, None)
