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
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Iterable

import rq

from . import events
from .state.callbacks import StateTargets
from .pipeline import Pipeline, build_pipeline
from .settings import Settings

_log = logging.getLogger(__name__)
TERMINAL_STATUSES = ("finished", "failed", "stopped", "canceled")


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
                                                 job_functions=tuple(job_functions))
        events.install(self.pipeline.subtitles)

    # worker side ----------------------------------------------------------
    def capture_path(self, job_id: str) -> str:
        return os.path.join(self.capture_dir, f"sublarr-telemetry-{os.getpid()}-{job_id}.json")

    def absorb(self, path: str) -> None:
        """Replay what a work-horse captured, then remove its file."""
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return  # SimpleWorker, or a horse killed before it could write
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

    def job_finished(self, queue: str, function: str, status: str, seconds: float) -> None:
        self.pipeline.jobs.job_finished(queue, function, status if status in TERMINAL_STATUSES else "other",
                                        seconds)

    # horse side -----------------------------------------------------------
    def begin_capture(self) -> None:
        self.pipeline.begin_capture()

    def end_capture(self, path: str) -> None:
        try:
            self.pipeline.end_capture(path)
        except OSError as exc:
            _log.warning("sublarr telemetry: a work-horse could not hand over its metrics: %s", exc)

    def shutdown(self) -> None:
        """Final export (also run at interpreter exit)."""
        if self.host is not None:
            self.host.shutdown()
        else:
            self.pipeline.shutdown()


class TelemetryWorkerMixin:
    """Adds job metrics and horse-to-worker hand-over to an rq worker class."""

    def __init__(self, *args, telemetry: WorkerTelemetry | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.telemetry = telemetry or WorkerTelemetry.for_process()
        self._sublarr_capture_path: str | None = None

    def execute_job(self, job, queue):
        path = self._sublarr_capture_path = self.telemetry.capture_path(job.id)
        started = time.monotonic()
        try:
            return super().execute_job(job, queue)
        finally:
            seconds = time.monotonic() - started
            self.telemetry.absorb(path)
            try:
                status = job.get_status(refresh=True)
                status = getattr(status, "value", status)
            except Exception:  # noqa: BLE001 - Redis trouble must not crash the worker loop
                status = "other"
            self.telemetry.job_finished(queue.name, job.func_name, str(status), seconds)

    def perform_job(self, job, queue):
        if not self.is_horse:
            return super().perform_job(job, queue)
        self.telemetry.begin_capture()
        try:
            return super().perform_job(job, queue)
        finally:
            self.telemetry.end_capture(self._sublarr_capture_path or self.telemetry.capture_path(job.id))


class Worker(TelemetryWorkerMixin, rq.Worker):
    """rq's forking worker with exactly-once job metrics."""


class SimpleWorker(TelemetryWorkerMixin, rq.SimpleWorker):
    """rq's in-process worker with job metrics."""
