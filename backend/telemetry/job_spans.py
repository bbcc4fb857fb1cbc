"""Job spans: one CONSUMER span per RQ job, in the worker process (tracing on only).

Imported only when the worker's pipeline has a tracer provider
(``OTEL_TRACES_EXPORTER``), like :mod:`telemetry.tracing`; it needs the API
alone. The span follows the OpenTelemetry messaging conventions for a
``process`` operation: named ``process <queue>``, kind ``CONSUMER``, with
``messaging.system=rq``, ``messaging.operation.{name,type}=process``,
``messaging.destination.name``, ``messaging.message.id`` (the job id),
``messaging.client.id`` (the worker's name) and ``code.function.name``.

Why in the worker process and not the work-horse: the worker times the job
for ``sublarr_job_duration_seconds`` and outlives the horse, so the span
covers the same interval as the observation, becomes its exemplar, and is
ended (with an error status) even when the horse is killed. It is current
only where the job runs (the horse inherits it through the fork), so the
horse's own spans (queries, Redis calls) are its children and the worker's
heartbeats while it waits are not; the horse flushes its spans before it exits
(:class:`telemetry.rq_worker.TelemetryWorkerMixin`).

Trace context from the enqueuing request: :func:`inject_creation_context`
puts it in ``job.meta`` at enqueue time (:class:`telemetry.rq_worker.TracedQueue`
does so), and the job span gets it as a *link*, as the conventions ask of
consumers: a job may run long after the request ended, so it starts a trace
of its own rather than stretching the request's.
"""
from __future__ import annotations

from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from . import catalog

META_KEY = "sublarr_trace_context"
"""``job.meta`` key holding the enqueuing context's propagation headers (``traceparent``, ...)."""

ERROR_MESSAGE_LIMIT = 1024
FAILED_STATUSES = ("failed", "stopped", "canceled")


def inject_creation_context(meta: dict | None) -> dict | None:
    """``meta`` plus the current trace context (when there is one) for the job's span to link to."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if not carrier:
        return meta
    return {**(meta or {}), META_KEY: carrier}


def creation_link(meta: Any) -> Link | None:
    """The link to the enqueuing span, from what :func:`inject_creation_context` stored."""
    carrier = meta.get(META_KEY) if isinstance(meta, dict) else None
    if not isinstance(carrier, dict):
        return None
    carrier = {key: value for key, value in carrier.items() if isinstance(key, str) and isinstance(value, str)}
    try:
        extracted = propagate.extract(carrier, context=context.Context())
    except Exception:  # noqa: BLE001 - a mangled carrier costs the link, never the job
        return None
    span_context = trace.get_current_span(extracted).get_span_context()
    return Link(span_context) if span_context.is_valid else None


def exception_type_name(exc_type: type) -> str:
    """``error.type`` of an exception: its fully qualified class name (builtins unqualified)."""
    module = getattr(exc_type, "__module__", "") or ""
    name = getattr(exc_type, "__qualname__", None) or getattr(exc_type, "__name__", "Exception")
    return name if module in ("builtins", "") else f"{module}.{name}"


class JobSpan:
    """The span of one running job; current only where the job runs (:meth:`activate`)."""

    def __init__(self, span: trace.Span):
        self.span = span

    def activate(self) -> object:
        """Make the span current (around ``perform_job``: in the work-horse, or in-process for
        a SimpleWorker), so the job's own spans are its children and the worker's bookkeeping
        while it waits (heartbeats, status reads) is not; returns the token for :meth:`deactivate`."""
        return context.attach(trace.set_span_in_context(self.span))

    @staticmethod
    def deactivate(token: object) -> None:
        context.detach(token)

    @property
    def span_context(self) -> trace.SpanContext:
        return self.span.get_span_context()

    def finish(self, status: str, error: dict | None = None, end_time: int | None = None) -> None:
        """End the span (at ``end_time``, epoch ns, when given): an error when the job did not
        finish or raised (``error``: ``type`` and ``message`` of the exception, as the
        work-horse saw it)."""
        span = self.span
        try:
            if span.is_recording():
                span.set_attribute("rq.job.status", status)
                error_type = (error or {}).get("type")
                if error_type or status in FAILED_STATUSES:
                    message = str((error or {}).get("message") or "")[:ERROR_MESSAGE_LIMIT]
                    span.set_attribute("error.type", error_type or status)
                    if error_type:
                        span.add_event("exception", {"exception.type": error_type, "exception.message": message})
                    span.set_status(Status(StatusCode.ERROR, f"{error_type}: {message}" if error_type
                                           else f"job {status}"))
        finally:
            span.end(end_time=end_time)


class JobSpans:
    """Starts :class:`JobSpan` objects from ``tracer_provider`` (the worker pipeline's)."""

    def __init__(self, tracer_provider: Any):
        self.provider = tracer_provider
        self.tracer = tracer_provider.get_tracer("telemetry.rq_worker", catalog.VERSION)

    def start(self, job: Any, queue_name: str, worker_name: str | None = None) -> JobSpan:
        attributes = {
            "messaging.system": "rq",
            "messaging.operation.name": "process",
            "messaging.operation.type": "process",
            "messaging.destination.name": queue_name,
            "messaging.message.id": str(job.id),
        }
        if worker_name:
            attributes["messaging.client.id"] = worker_name
        try:
            attributes["code.function.name"] = job.func_name
        except Exception:  # noqa: BLE001 - a job that cannot be deserialised still gets its span
            pass
        link = creation_link(getattr(job, "meta", None))
        # A root: the worker loop's context is no parent; the enqueuing request is a link.
        span = self.tracer.start_span(f"process {queue_name}", context=context.Context(), kind=SpanKind.CONSUMER,
                                      attributes=attributes, links=[link] if link else None)
        return JobSpan(span)
