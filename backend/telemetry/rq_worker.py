"""RQ workers whose jobs' metrics reach Prometheus exactly once.

rq's default :class:`rq.Worker` forks a work-horse per job, and the horse
leaves with ``os._exit``: whatever a job records in the horse dies with it,
and a horse that exported on its own would either re-send its parent's
cumulative points or create one-off series per job. Here the horse never
exports. It captures what the job recorded (translations, provider calls,
database queries) into a small file that the worker replays into its own
long-lived instruments after the horse exits, and the worker records the job's
duration and outcome. One worker process is one ``service.instance.id`` for
its whole life, whatever it forks. :class:`SimpleWorker` runs jobs in-process
and records directly.

rq's ``SpawnWorker`` starts a fresh interpreter per job instead of forking;
nothing hands its records back, so use ``Worker`` or ``SimpleWorker``.

Use ``rq worker -w telemetry.rq_worker.Worker`` (or ``SimpleWorker``), or
build one in code with ``Worker(queues, connection=..., telemetry=WorkerTelemetry())``.
Pushing needs ``OTEL_METRICS_EXPORTER=otlp`` and an OTLP endpoint.

With tracing on (``OTEL_TRACES_EXPORTER``) every job gets a span
(:mod:`telemetry.job_spans`), which is also the exemplar of its
``sublarr_job_duration_seconds`` observation; enqueue through
:class:`TracedQueue` and the span links to the enqueuing request's span.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterable

import rq
from opentelemetry.trace import get_current_span

from . import events
from .state.callbacks import StateTargets
from .pipeline import Pipeline, build_pipeline
from .settings import Settings
from .extension import _tracing_available

_log = logging.getLogger(__name__)
TERMINAL_STATUSES = ("finished", "failed", "stopped", "canceled")
HORSE_SPAN_FLUSH_SECONDS = 1.0
HORSE_SPAN_FLUSH_GRACE_SECONDS = 0.5  # beyond the SDK's own timeout, before the horse leaves anyway


class WorkerTelemetry:
    """The telemetry of one RQ worker process.

    One pipeline per process: when the worker process already initialised
    telemetry on a Flask app (Sublarr's ``worker.py`` calls ``create_app()``),
    :meth:`for_process` uses that pipeline and marks the process as a worker
    (see ``Telemetry.role``); otherwise it builds its own, without an app.
    """

    @classmethod
    def for_process(cls, **kwargs) -> "WorkerTelemetry":
        from .extension import current_telemetry

        host = current_telemetry()
        if host is not None and host.pipeline is not None and host.pipeline.owner_pid == os.getpid():
            return cls(host=host, **kwargs)
        return cls(**kwargs)

    def __init__(self, settings: Settings | None = None, *, providers: Iterable[str] = (),
                 job_functions: Iterable[str] = (), version: str | None = None,
                 disk_paths: Iterable[str] = (), resource=None, registry=None,
                 capture_dir: str | None = None, host=None):
        self.capture_dir = capture_dir or tempfile.gettempdir()
        self.host = host
        if host is not None:  # the app's telemetry in this process: its pipeline, worker role
            self.settings = host.settings
            self.pipeline = host.pipeline
            host.worker_bound = True
            if not self.settings.push and host.listener is None:
                _log.warning("sublarr telemetry: this RQ worker's metrics are not served; set "
                             "SUBLARR_METRICS_LISTEN (Prometheus scrapes the worker) or "
                             "OTEL_METRICS_EXPORTER=otlp in the worker process")
            return
        self.settings = settings or Settings.from_env()
        if not self.settings.enabled:  # SUBLARR_METRICS_ENABLED=false: record, export nothing
            self.settings = self.settings.with_overrides(exporters=())
        elif "otlp" not in self.settings.exporters and self.settings.listen is None:
            _log.warning("sublarr telemetry: an RQ worker is not scraped; set OTEL_METRICS_EXPORTER=otlp "
                         "so its job metrics reach the collector")
        targets = StateTargets(version=version or "unknown",
                               disk_paths=tuple(disk_paths or self.settings.disk_paths))

        def targets_for(queries):
            queries.instrument_all()  # jobs build their own engines; every engine in a worker is the app's
            return targets
        self.pipeline: Pipeline = build_pipeline(self.settings, targets_for, registry=registry,
                                                 resource=resource, providers=tuple(providers),
                                                 job_functions=tuple(job_functions),
                                                 tracing=_tracing_available(self.settings))
        events.install(self.pipeline.subtitles)

    @property
    def job_spans(self):
        """A :class:`telemetry.job_spans.JobSpans` when this process traces, else None
        (and then :mod:`telemetry.job_spans` is never imported)."""
        provider = self.pipeline.tracer_provider
        if provider is None:
            return None
        spans = getattr(self, "_job_spans", None)
        if spans is None or spans.provider is not provider:
            from .job_spans import JobSpans
            spans = self._job_spans = JobSpans(provider)
        return spans

    # worker side ----------------------------------------------------------
    def capture_path(self, job_id: str) -> str:
        return os.path.join(self.capture_dir, f"sublarr-telemetry-{os.getpid()}-{job_id}.json")

    def absorb(self, path: str) -> dict | None:
        """Replay what a work-horse captured, then remove its file; returns what it captured."""
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return None  # SimpleWorker, or a horse killed before it could write
        except (OSError, ValueError) as exc:
            _log.warning("sublarr telemetry: could not read %s from a work-horse: %s", path, exc)
            data = None
        finally:
            try:
                os.unlink(path)
            except OSError:
                pass
        if data:
            self.pipeline.replay(data)
        return data if isinstance(data, dict) else None

    def job_finished(self, queue: str, function: str, status: str, seconds: float, span_context=None) -> None:
        self.pipeline.jobs.job_finished(queue, function, status if status in TERMINAL_STATUSES else "other",
                                        seconds, span_context)

    # horse side -----------------------------------------------------------
    def begin_capture(self) -> None:
        self.pipeline.begin_capture()
        if self.pipeline.tracer_provider is not None:
            self._trace_as_the_worker()

    def _trace_as_the_worker(self) -> None:
        """The horse's spans (queries, Redis calls) carry the worker's resource, as its metrics do.

        Why: newer SDKs give a forked child's tracer provider new process-dependent
        resource attributes, a new ``service.instance.id`` among them. The horse
        gets a provider of its own (public API) with the worker's resource and
        sampler; :meth:`flush_spans` sends what it ended. Its exporters are new
        too, which they must be: the inherited ones' pooled connections are
        sockets the worker still uses.
        """
        from .tracing import build_tracer_provider

        try:
            self.pipeline.tracer_provider = build_tracer_provider(self.settings, self.pipeline.resource)
        except Exception as exc:  # noqa: BLE001 - the job runs regardless; spans keep the SDK's resource
            _log.warning("sublarr telemetry: a work-horse keeps its inherited tracer provider: %s", exc)
            return
        tracing = getattr(self.host, "tracing", None)
        if tracing is not None:  # the app's instrumentations follow (telemetry.rebind)
            tracing.bind(self.pipeline)

    def end_capture(self, path: str, job_error: dict | None = None) -> None:
        """Hand the job's records to the worker, with the moment the job's work ended: the
        worker's duration and span then leave out what the horse does after (its span flush)."""
        extra = {"finished_monotonic": time.monotonic(), "finished_ns": time.time_ns()}
        if job_error:
            extra["job_error"] = job_error
        try:
            self.pipeline.end_capture(path, extra)
        except OSError as exc:
            _log.warning("sublarr telemetry: a work-horse could not hand over its metrics: %s", exc)

    def flush_spans(self) -> None:
        """In a work-horse, before ``os._exit``: send its spans, waiting at most about
        ``HORSE_SPAN_FLUSH_SECONDS``.

        Why a thread: the SDK's batch processor exports on the flushing thread and
        does not bound the export itself, and a forked child can block for ever
        there (a module lock held by a parent thread at fork time: seen with
        ``requests`` importing ``netrc`` on the exporter's first call). The horse
        must leave whatever happens, so the flush runs in a daemon thread that
        ``os._exit`` ends; spans it could not send are logged, never waited for.
        """
        provider = self.pipeline.tracer_provider
        if provider is None:
            return
        done = threading.Event()

        def flush() -> None:
            try:
                provider.force_flush(timeout_millis=int(HORSE_SPAN_FLUSH_SECONDS * 1000))
            except Exception as exc:  # noqa: BLE001 - the job is done; its spans are best effort
                _log.warning("sublarr telemetry: a work-horse could not send its spans: %s", exc)
            finally:
                done.set()

        threading.Thread(target=flush, name="sublarr-horse-span-flush", daemon=True).start()
        if not done.wait(HORSE_SPAN_FLUSH_SECONDS + HORSE_SPAN_FLUSH_GRACE_SECONDS):
            _log.warning("sublarr telemetry: a work-horse left with spans unsent: their export was still "
                         "blocked after %.1f s", HORSE_SPAN_FLUSH_SECONDS + HORSE_SPAN_FLUSH_GRACE_SECONDS)

    def shutdown(self) -> None:
        """Final export (also run at interpreter exit)."""
        if self.host is not None:
            self.host.shutdown()
        else:
            self.pipeline.shutdown()


def job_interval(started: float, ended: float, captured: dict | None) -> tuple[float, int | None]:
    """The job's duration (seconds) and, when a work-horse said when its work ended, that
    moment (epoch ns) for the span's end; the horse's word counts only within [started, ended]
    (``time.monotonic`` is one clock for the worker and the horses it forks)."""
    finished = (captured or {}).get("finished_monotonic")
    finished_ns = (captured or {}).get("finished_ns")
    if (isinstance(finished, (int, float)) and not isinstance(finished, bool) and started <= finished <= ended
            and isinstance(finished_ns, int) and not isinstance(finished_ns, bool)):
        return finished - started, finished_ns
    return ended - started, None


class TelemetryWorkerMixin:
    """Adds job metrics, job spans and horse-to-worker hand-over to an rq worker class."""

    def __init__(self, *args, telemetry: WorkerTelemetry | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.telemetry = telemetry or WorkerTelemetry.for_process()
        self._sublarr_capture_path: str | None = None
        self._sublarr_job_error: dict | None = None
        self._sublarr_job_span = None  # the running job's span, made current in perform_job
        if self.telemetry.job_spans is not None:
            self.push_exc_handler(self._sublarr_note_exception)  # rq's public handler stack
            # The OTLP/HTTP exporter's first request imports netrc (through requests); imported
            # here, before any fork, no horse can inherit that import half done (see flush_spans).
            import netrc  # noqa: F401

    def _sublarr_note_exception(self, job, exc_type, exc_value, traceback):
        """Remember what the job raised, for its span (the horse hands it over)."""
        from .job_spans import exception_type_name

        self._sublarr_job_error = {"type": exception_type_name(exc_type), "message": str(exc_value)}
        return None  # fall through to the next handler

    def execute_job(self, job, queue):
        path = self._sublarr_capture_path = self.telemetry.capture_path(job.id)
        self._sublarr_job_error = None
        spans = self.telemetry.job_spans
        job_span = spans.start(job, queue.name, getattr(self, "name", None)) if spans is not None else None
        self._sublarr_job_span = job_span
        started = time.monotonic()
        try:
            return super().execute_job(job, queue)
        finally:
            ended = time.monotonic()
            captured = self.telemetry.absorb(path)
            seconds, end_ns = job_interval(started, ended, captured)
            try:
                status = job.get_status(refresh=True)
                status = getattr(status, "value", status)
            except Exception:  # noqa: BLE001 - Redis trouble must not crash the worker loop
                status = "other"
            try:
                self.telemetry.job_finished(queue.name, job.func_name, str(status), seconds,
                                            job_span.span_context if job_span is not None else None)
            finally:
                self._sublarr_job_span = None
                if job_span is not None:  # always ended: the worker loop goes on
                    error = (captured or {}).get("job_error") or self._sublarr_job_error
                    job_span.finish(str(status), error if isinstance(error, dict) else None, end_ns)

    def perform_job(self, job, queue):
        job_span = self._sublarr_job_span
        token = job_span.activate() if job_span is not None else None
        try:
            if not self.is_horse:
                return super().perform_job(job, queue)
            self.telemetry.begin_capture()
            try:
                return super().perform_job(job, queue)
            finally:
                self.telemetry.end_capture(self._sublarr_capture_path or self.telemetry.capture_path(job.id),
                                           self._sublarr_job_error)
                self.telemetry.flush_spans()  # the horse leaves with os._exit: nothing flushes after this
        finally:
            if token is not None:
                job_span.deactivate(token)


class Worker(TelemetryWorkerMixin, rq.Worker):
    """rq's forking worker with exactly-once job metrics."""


class SimpleWorker(TelemetryWorkerMixin, rq.SimpleWorker):
    """rq's in-process worker with job metrics."""


class TracedQueue(rq.Queue):
    """An rq queue whose jobs carry the enqueuing trace context in ``job.meta``
    (for the job span's link); without a current span it adds nothing."""

    def create_job(self, *args, meta: dict | None = None, **kwargs):
        if get_current_span().get_span_context().is_valid:  # else nothing to carry, nothing imported
            from .job_spans import inject_creation_context
            meta = inject_creation_context(meta)
        return super().create_job(*args, meta=meta, **kwargs)
