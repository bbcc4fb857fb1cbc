"""Wanted subtitle items (Sublarr: ``db.wanted``)."""
from __future__ import annotations

from flask import current_app
from sqlalchemy import func, select

from refapp.models import WantedItem


def get_wanted_summary() -> dict[str, int]:
    """Items by status, with ``wanted`` always present (as Sublarr's summary)."""
    session = current_app.session_factory()
    rows = session.execute(select(WantedItem.status, func.count()).group_by(WantedItem.status)).all()
    summary = {status: int(count) for status, count in rows}
    summary.setdefault("wanted", 0)
    summary["total"] = sum(int(count) for _, count in rows)
    return summary
