"""Simulated subtitle translation of one TranslationJob row.

Stands in for Sublarr's LLM translation: it takes time, mostly succeeds,
sometimes fails, and is skipped when there is nothing to translate. The
outcome is written to the database and reported as a domain event, because
nothing outside the app can tell that a translation finished.
"""
from __future__ import annotations

import random
import time

from telemetry import events

from refapp.models import Translation, TranslationJob, utcnow


class JobNotFound(LookupError):
    """The TranslationJob row does not exist (deleted, or wrong database)."""


def translate_job(
    session_factory,
    job_id: int,
    latency_scale: float = 1.0,
    rng: random.Random | None = None,
    failure_rate: float = 0.1,
) -> str:
    """Run job ``job_id`` and return its final status: success, failed or skipped."""
    rng = rng or random.Random()
    started = time.perf_counter()
    with session_factory() as session:
        job = session.get(TranslationJob, job_id)
        if job is None:
            raise JobNotFound(f"translation job {job_id} does not exist")
        job.status = "running"
        session.commit()
        fmt, skip = job.fmt, job.source_lang == job.target_lang

    if skip:
        status = "skipped"
    else:
        if latency_scale > 0:
            time.sleep(rng.uniform(0.05, 0.5) * latency_scale)
        status = "failed" if rng.random() < failure_rate else "success"
    duration = time.perf_counter() - started

    with session_factory() as session:
        job = session.get(TranslationJob, job_id)
        job.status = status
        job.finished_at = utcnow()
        if status == "success":
            session.add(Translation(job_id=job_id, fmt=fmt, duration_seconds=duration))
        session.commit()

    events.translation_finished(status=status, fmt=fmt, duration=duration)
    return status
