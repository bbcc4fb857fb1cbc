"""Sublarr's job queue interface: threads in-process, or RQ on Redis.

Besides the list views Sublarr's UI uses, both queues offer ``count_queued``,
``count_active`` and ``count_failed``, which read totals without building job
lists, so a metrics scrape stays cheap however many jobs there are.
rq is imported only by RQJobQueue, so memory mode runs without it installed.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

log = logging.getLogger(__name__)

QUEUED, STARTED, FINISHED, FAILED = "queued", "started", "finished", "failed"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class MemoryJobQueue:
    """Runs jobs on a thread pool, each inside the Flask app context.

    Counters are kept next to the records under one lock, so they are exact.
    Records are bounded (the oldest finished ones are forgotten, and only the
    last ``failed_history`` failures keep their details) but ``count_failed``
    is a running total that is never capped.
    """

    backend = "memory"

    def __init__(self, app, workers: int = 2, *, history: int = 1000, failed_history: int = 1000):
        self._app = app
        self._workers = workers
        self._history = history
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="refapp-job")
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._failed: deque[dict[str, Any]] = deque(maxlen=failed_history)
        self._queued = 0
        self._active = 0
        self._failed_total = 0

    def enqueue(self, func: Callable[..., Any], *args, job_id: str | None = None, **kwargs) -> str:
        job_id = job_id or uuid.uuid4().hex
        record = {
            "id": job_id,
            "func": getattr(func, "__qualname__", repr(func)),
            "status": QUEUED,
            "result": None,
            "error": None,
            "enqueued_at": time.time(),
        }
        with self._lock:
            current = self._jobs.get(job_id)
            if current is not None and current["status"] in (QUEUED, STARTED):
                raise ValueError(f"job {job_id!r} is already {current['status']}")
            self._jobs[job_id] = record
            self._jobs.move_to_end(job_id)
            self._queued += 1
            self._forget_old()
        try:
            self._executor.submit(self._run, record, func, args, kwargs)
        except RuntimeError:  # executor shut down
            with self._lock:
                self._queued -= 1
                self._jobs.pop(job_id, None)
            raise
        return job_id

    def _forget_old(self) -> None:
        """Drop the oldest finished records beyond ``history``. Lock held."""
        excess = len(self._jobs) - self._history
        if excess <= 0:
            return
        for job_id in [j for j, r in self._jobs.items() if r["status"] in (FINISHED, FAILED)][:excess]:
            del self._jobs[job_id]

    def _run(self, record: dict[str, Any], func, args, kwargs) -> None:
        with self._lock:
            self._queued -= 1
            self._active += 1
            record["status"] = STARTED
            record["started_at"] = time.time()
        try:
            with self._app.app_context():
                result = func(*args, **kwargs)
        except Exception as exc:
            log.warning("job %s (%s) failed: %s", record["id"], record["func"], _describe(exc))
            with self._lock:
                self._active -= 1
                self._failed_total += 1
                record.update(status=FAILED, error=_describe(exc), ended_at=time.time())
                self._failed.append(record)
            return
        with self._lock:
            self._active -= 1
            record.update(status=FINISHED, result=result, ended_at=time.time())

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            record = self._jobs.get(job_id)
            return dict(record) if record is not None else None

    def get_queue_length(self) -> int:
        return self.count_queued()

    def get_active_jobs(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._jobs.values() if r["status"] == STARTED]

    def get_failed_jobs(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._failed]

    def count_queued(self) -> int:
        with self._lock:
            return self._queued

    def count_active(self) -> int:
        with self._lock:
            return self._active

    def count_failed(self) -> int:
        with self._lock:
            return self._failed_total

    def get_backend_info(self) -> dict[str, Any]:
        with self._lock:
            return {
                "type": self.backend,
                "workers": self._workers,
                "queued": self._queued,
                "active": self._active,
                "failed": self._failed_total,
            }

    def shutdown(self, wait: bool = True) -> None:
        """Stop accepting jobs; with ``wait``, let queued and running ones finish."""
        self._executor.shutdown(wait=wait, cancel_futures=not wait)


class RQJobQueue:
    """Jobs in Redis, run by ``python -m refapp.worker`` processes.

    Counts come from the queue list and rq's registries (LLEN/ZCARD), never
    from fetching jobs. They are read with ``cleanup=False``: a read must not
    change queue state (registry cleanup moves abandoned jobs and runs failure
    callbacks); rq workers already run that cleanup in their maintenance loop.
    """

    backend = "rq"

    def __init__(self, redis_conn, name: str = "sublarr"):
        try:  # with telemetry, jobs carry the enqueuing request's trace context (a link on the job span)
            from telemetry.rq_worker import TracedQueue as Queue
        except ImportError:
            from rq import Queue

        self.connection = redis_conn
        self.queue = Queue(name, connection=redis_conn)

    def enqueue(self, func: Callable[..., Any], *args, job_id: str | None = None, **kwargs) -> str:
        # enqueue_call keeps the job's own kwargs apart from rq's options
        # (timeout, description, ...), which ``Queue.enqueue`` would swallow.
        job = self.queue.enqueue_call(func=func, args=args, kwargs=kwargs, job_id=job_id)
        return job.id

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        """The job as a dict; status is rq's (queued/started/finished/failed,
        or rq's other states such as deferred or canceled, as named by rq)."""
        from rq.exceptions import NoSuchJobError
        from rq.job import Job

        try:
            job = Job.fetch(job_id, connection=self.connection)
        except NoSuchJobError:
            return None
        return self._as_dict(job)

    @staticmethod
    def _as_dict(job) -> dict[str, Any]:
        status = job.get_status(refresh=False)
        status = getattr(status, "value", status)
        error = None
        if status == FAILED:
            latest = job.latest_result()
            error = latest.exc_string if latest is not None else None
        return {
            "id": job.id,
            "func": job.func_name,
            "status": status,
            "result": job.return_value() if status == FINISHED else None,
            "error": error,
        }

    def _jobs(self, job_ids: list[str]) -> list[dict[str, Any]]:
        from rq.job import Job

        jobs = Job.fetch_many(job_ids, connection=self.connection)
        return [self._as_dict(j) for j in jobs if j is not None]

    def get_queue_length(self) -> int:
        return self.count_queued()

    def get_active_jobs(self, limit: int = 100) -> list[dict[str, Any]]:
        """Up to ``limit`` running jobs (the UI view; use count_active for totals)."""
        ids = self.queue.started_job_registry.get_job_ids(0, limit - 1, cleanup=False)
        return self._jobs(ids)

    def get_failed_jobs(self, limit: int = 100) -> list[dict[str, Any]]:
        """The ``limit`` most recent failures (use count_failed for totals)."""
        ids = self.queue.failed_job_registry.get_job_ids(0, limit - 1, desc=True, cleanup=False)
        return self._jobs(ids)

    def count_queued(self) -> int:
        return self.queue.count

    def count_active(self) -> int:
        return self.queue.started_job_registry.get_job_count(cleanup=False)

    def count_failed(self) -> int:
        return self.queue.failed_job_registry.get_job_count(cleanup=False)

    def get_backend_info(self) -> dict[str, Any]:
        from rq import Worker

        return {
            "type": self.backend,
            "queue": self.queue.name,
            "workers": Worker.count(queue=self.queue),
            "queued": self.count_queued(),
            "active": self.count_active(),
            "failed": self.count_failed(),
        }

    def shutdown(self, wait: bool = True) -> None:
        """Nothing runs in this process; present so callers can treat queues alike."""


def make_queue(config, app, redis_client=None) -> MemoryJobQueue | RQJobQueue:
    """RQ when a Redis URL is configured, else the in-process thread pool."""
    if config.redis_url:
        if redis_client is None:
            import redis

            redis_client = redis.Redis.from_url(config.redis_url)
        return RQJobQueue(redis_client, name=config.rq_queue_name)
    return MemoryJobQueue(app, workers=config.queue_workers)
