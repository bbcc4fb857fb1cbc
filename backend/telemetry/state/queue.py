"""Job queue depth from counts, never by fetching every job."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class QueueReading:
    backend: str
    queued: int
    active: int
    failed: int


@dataclass(frozen=True)
class QueueKind:
    backend: str               # memory or rq
    rq_name: str | None = None


def describe_queue(job_queue: Any) -> QueueKind:
    """memory or rq (and the RQ queue name); asked once per queue object.

    An ``rq.Queue`` held as ``.queue`` is recognised directly; otherwise the
    queue's ``get_backend_info()["type"]`` decides, as in Sublarr.
    """
    inner = getattr(job_queue, "queue", None)
    try:
        from rq import Queue
    except ImportError:  # pragma: no cover - rq is only needed for RQ queues
        Queue = None
    if Queue is not None and isinstance(inner, Queue):
        return QueueKind("rq", inner.name)
    info = job_queue.get_backend_info() if hasattr(job_queue, "get_backend_info") else {}
    if str(info.get("type", "memory")).lower() != "rq":
        return QueueKind("memory")
    for key in ("queue", "queue_name", "name"):
        if info.get(key):
            return QueueKind("rq", str(info[key]))
    return QueueKind("rq", "default")


def read_rq(queue_name: str, connection: Any) -> QueueReading:
    """Counts from RQ's own registries: three O(1) Redis calls, no job payloads, no cap.

    ``cleanup=False`` keeps the read an observation: RQ's cleanup moves
    abandoned jobs and runs failure callbacks, which is the workers' business.
    A crashed worker's job therefore counts as active until a worker's
    maintenance pass (RQ's own default interval) cleans it up.
    """
    from rq import Queue
    from rq.registry import FailedJobRegistry, StartedJobRegistry

    return QueueReading(
        backend="rq",
        queued=Queue(queue_name, connection=connection).count,
        active=StartedJobRegistry(queue_name, connection=connection).get_job_count(cleanup=False),
        failed=FailedJobRegistry(queue_name, connection=connection).get_job_count(cleanup=False),
    )


def read_memory_queue(job_queue: Any) -> QueueReading:
    """Counts from an in-process queue: its count_* methods when it has them.

    Sublarr's own queue only offers list getters; those lists are held in
    memory, so their lengths are a fair fallback (documented cost: one list
    copy per scrape).
    """
    if hasattr(job_queue, "count_failed"):
        return QueueReading("memory", job_queue.count_queued(), job_queue.count_active(),
                            job_queue.count_failed())
    return QueueReading("memory", int(job_queue.get_queue_length()),
                        len(job_queue.get_active_jobs()), len(job_queue.get_failed_jobs()))
