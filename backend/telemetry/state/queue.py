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


def queue_backend(job_queue: Any) -> str:
    info = job_queue.get_backend_info() if hasattr(job_queue, "get_backend_info") else {}
    return "rq" if str(info.get("type", "memory")).lower() == "rq" else "memory"


def read_rq(queue_name: str, connection: Any) -> QueueReading:
    """Counts from RQ's own registries: O(1) Redis calls, no job payloads, no cap."""
    from rq import Queue
    from rq.registry import FailedJobRegistry, StartedJobRegistry

    queue = Queue(queue_name, connection=connection)
    return QueueReading(
        backend="rq",
        queued=queue.count,
        active=StartedJobRegistry(queue_name, connection=connection).count,
        failed=FailedJobRegistry(queue_name, connection=connection).count,
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
