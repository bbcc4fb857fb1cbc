"""Translation jobs in the ``jobs`` table (Sublarr: ``db.jobs``)."""
from __future__ import annotations

from flask import current_app
from sqlalchemy import func, select

from refapp.models import TranslationJob

PENDING_STATUSES = ("pending", "queued")


def get_pending_job_count() -> int:
    """Jobs waiting to be translated (one COUNT, no rows fetched)."""
    session = current_app.session_factory()
    return int(session.scalar(select(func.count()).select_from(TranslationJob)
                              .where(TranslationJob.status.in_(PENDING_STATUSES))))
