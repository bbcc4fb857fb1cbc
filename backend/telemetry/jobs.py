"""Job duration and outcome families, recorded by the worker that ran the job.

Labels stay bounded: queue names are few; function names come from a
registered set (everything else is ``other``), or, when none is registered,
the first few distinct names seen.
"""
from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.metrics import Meter

from . import catalog
from .bounds import BoundedValues
from .cardinality import standalone_guard


class JobMetrics:
    def __init__(self, meter: Meter, functions: Iterable[str] = (), guards=None, native=None):
        """``native``: a :class:`~telemetry.native_histograms.NativeHistograms` that
        also gets every duration, for its exponential histogram."""
        duration = catalog.family("sublarr_job_duration_seconds")
        outcomes = catalog.family("sublarr_jobs_total")
        self._duration = meter.create_histogram(
            duration.instrument_name, unit=duration.unit, description=duration.description,
            explicit_bucket_boundaries_advisory=list(duration.buckets))
        self._outcomes = meter.create_counter(
            outcomes.instrument_name, unit=outcomes.unit, description=outcomes.description)
        functions = tuple(functions)
        function_label = outcomes.label("function")
        if functions:  # a registered set is closed: nothing else gets its own series
            from dataclasses import replace
            function_label = replace(function_label, cap=len(functions))
        self.queue = BoundedValues(outcomes.label("queue"))
        self.function = BoundedValues(function_label, functions)
        self.status = BoundedValues(outcomes.label("status"))
        self._guard = (guards or standalone_guard)(outcomes)
        self._exponential = native.track(duration, ("queue", "function", "status")) if native else None

    def job_finished(self, queue: str, function: str, status: str, seconds: float) -> None:
        values = self._guard.admit((self.queue(queue), self.function(function or "other"), self.status(status)))
        attributes = dict(zip(("queue", "function", "status"), values))
        self._outcomes.add(1, attributes)
        self._duration.record(max(float(seconds), 0.0), attributes)
        if self._exponential is not None:
            self._exponential.add(values, max(float(seconds), 0.0))
