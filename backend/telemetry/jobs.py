"""Job duration and outcome families, recorded by the worker that ran the job.

Labels stay bounded: queue names are few; function names come from a
registered set (everything else is ``other``), or, when none is registered,
the first few distinct names seen.

The two families are a hot table like the HTTP and query ones (see
:mod:`telemetry.deferred`): ``sublarr_jobs_total`` is the histogram's row
count, both paths render them from one snapshot, and with tracing on the
job's span becomes its bucket's exemplar (``/metrics`` in OpenMetrics and
OTLP alike).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from . import catalog
from .bounds import BoundedValues
from .deferred import DeferredHistogram


class JobMetrics:
    def __init__(self, functions: Iterable[str] = (), guards=None, produced=None):
        """``produced``: the pipeline's :class:`~telemetry.histograms.ProducedHistograms`
        (which also feeds the exponential twin when native histograms are on)."""
        duration = catalog.family("sublarr_job_duration_seconds")
        outcomes = catalog.family("sublarr_jobs_total")
        functions = tuple(functions)
        function_label = outcomes.label("function")
        if functions:  # a registered set is closed: nothing else gets its own series
            function_label = replace(function_label, cap=len(functions))
        self.queue = BoundedValues(outcomes.label("queue"))
        self.function = BoundedValues(function_label, functions)
        self.status = BoundedValues(outcomes.label("status"))
        self.jobs = DeferredHistogram(duration, outcomes, produced=produced,
                                      guard=guards(outcomes) if guards else None)

    def job_finished(self, queue: str, function: str, status: str, seconds: float, span_context=None) -> None:
        """One finished job; ``span_context`` (the job's span, tracing on) becomes the exemplar if sampled."""
        key = (self.queue(queue), self.function(function or "other"), self.status(status))
        self.jobs.note_with_span(key, max(float(seconds), 0.0), span_context)
