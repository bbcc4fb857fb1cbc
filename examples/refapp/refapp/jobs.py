"""Job functions for both queues (RQ needs module-level, importable callables).

Inside the memory queue a job runs in the Flask app context and uses the app's
session factory; in an RQ worker there is no app, so the job builds its own
engine from the environment, once per process.
"""
from __future__ import annotations

import os
import random
import threading
import time

from flask import current_app, has_app_context
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from refapp.config import Config
from refapp.models import make_engine
from refapp.translation import translate_job

_lock = threading.Lock()
_process_context: tuple[int, Engine, sessionmaker, Config] | None = None


class TranslationFailed(RuntimeError):
    """Raised so the queue records a failed translation as a failed job."""


def _context() -> tuple[sessionmaker, Config]:
    """(session_factory, config) from the Flask app, else from the environment."""
    if has_app_context():
        return current_app.session_factory, current_app.refapp_config
    global _process_context
    with _lock:
        # Keyed by pid: an engine inherited across fork (rq forks a work horse
        # per job) must not share the parent's pooled connections. Keyed by
        # the configuration too, so a changed environment is picked up.
        config = Config.from_env()
        if (_process_context is None or _process_context[0] != os.getpid()
                or _process_context[3] != config):
            if _process_context is not None:
                _process_context[1].dispose(close=False)
            engine = make_engine(config.database_url)
            _process_context = (os.getpid(), engine, sessionmaker(bind=engine), config)
        return _process_context[2], _process_context[3]


def run_translation(job_id: int) -> str:
    """Translate TranslationJob ``job_id``; raises TranslationFailed if it failed."""
    session_factory, config = _context()
    seed = None if config.seed is None else f"{config.seed}:translation:{job_id}"
    status = translate_job(
        session_factory, job_id, config.latency_scale, random.Random(seed), config.failure_rate
    )
    if status == "failed":
        raise TranslationFailed(f"translation job {job_id} failed")
    return status


def always_fails() -> None:
    """A job that always raises, for testing failed-job counting."""
    raise RuntimeError("always_fails: deliberate failure")


def sleep_for(seconds: float) -> float:
    """A job that stays active for ``seconds``, for testing active-job counts."""
    time.sleep(seconds)
    return seconds


def long_translation(job_id: int, seconds: float) -> str:
    """A translation that takes ``seconds`` first (Sublarr's run for minutes) and
    searches the providers, when it runs in the app context (as Sublarr's worker runs jobs)."""
    time.sleep(seconds)
    if has_app_context():
        current_app.extensions["provider_manager"].search(f"job {job_id}", "de")
    return run_translation(job_id)


JOB_FUNCTIONS = tuple(f"refapp.jobs.{name}" for name in ("run_translation", "always_fails", "sleep_for",
                                                         "long_translation"))
"""The job functions this app enqueues: the telemetry's bounded ``function`` label values."""
