"""Prometheus recording rules and alerts for the ``sublarr_*`` series, generated from
Python (not installed with the package), as the monitoring mixins write theirs.

Rules are code that names series through the metric catalog
(:mod:`telemetry.catalog`), so a renamed or removed family breaks the generator
instead of silently leaving a rule that selects nothing; alerts refer to the
recording rules they read by object. ``scripts/rules`` writes
``monitoring/prometheus/rules/sublarr.rules.yml`` (``--check`` only compares).
Needs PyYAML.
"""
from __future__ import annotations

from . import alerts, recording
from .model import Alert, Group, Record

GROUPS: tuple[Group, ...] = (recording.GROUP, alerts.GROUP)


def build() -> dict:
    """The rules file's data: ``{"groups": [...]}`` as Prometheus reads it."""
    return {"groups": [group.to_dict() for group in GROUPS]}


def render() -> str:
    """The committed text of the rules file."""
    from .rules_file import text

    return text(GROUPS)


__all__ = ["Alert", "GROUPS", "Group", "Record", "build", "render"]
