"""Shared state is one reading, never a sum over processes.

The queue in Redis/the database, the database size and Redis itself look the
same from every process. Telemetry reports them from the web role only
(``SUBLARR_METRICS_ROLE``), and the committed dashboards and rules take ``max``
(or ``min``) of them, so several web processes, or a worker that reports them
against the default, never multiply the value. Which families are shared is the
catalog's ``Family.shared``.
"""
import re

import pytest

from harness.monitoring import committed_dashboards, rule_groups
from telemetry import catalog
from telemetry.state.callbacks import SHARED_SOURCES
from telemetry.dashboard_json import iter_panels

SHARED_FAMILIES = tuple(f.name for f in catalog.FAMILIES if f.shared is True)
SHARED_BACKEND = {f.name: f.shared for f in catalog.FAMILIES if isinstance(f.shared, str)}
"""Families shared for one backend only (an RQ queue, a Redis cache); the other
backend lives in each process, where sum is right."""


def summed(expr: str) -> list[str]:
    """Shared families that a ``sum`` aggregates directly (possibly through a *_over_time)."""
    found = []
    for name in SHARED_FAMILIES:
        if re.search(rf"\bsum(?: by \([^)]*\))? ?\((?:\w+_over_time\()?{name}\b", expr):
            found.append(name)
    for name, backend in SHARED_BACKEND.items():
        for match in re.finditer(rf"\bsum(?: by \([^)]*\))? ?\((?:\w+_over_time\()?{name}\b(\{{[^}}]*\}})?", expr):
            selected = re.search(r'backend="([^"]*)"', match.group(1) or "")
            if selected is None or selected.group(1) == backend:
                found.append(name)
    return found


def dashboard_exprs():
    for uid, dashboard in committed_dashboards().items():
        for panel in iter_panels(dashboard):
            for target in panel.get("targets", []):
                yield f"{uid}: {panel.get('title')}", target["expr"]


def rule_exprs():
    for group in rule_groups():
        for rule in group["rules"]:
            yield rule.get("alert") or rule.get("record"), rule["expr"]


@pytest.mark.parametrize("where, expr", [*dashboard_exprs(), *rule_exprs()])
def test_shared_state_is_never_summed_over_processes(where, expr):
    assert summed(expr) == [], f"{where}: {expr}"


def test_the_check_finds_a_sum():
    assert summed('sum(sublarr_job_queue_size{job=~"$job"})') == ["sublarr_job_queue_size"]
    assert summed('sum by (backend) (sublarr_queue_size{backend="rq"})') == ["sublarr_queue_size"]
    assert summed('sum by (backend) (sublarr_queue_size{backend="memory"})') == []
    assert summed("sum by (job) (sublarr_queue_size)") == ["sublarr_queue_size"]
    assert summed('sum(sublarr_cache_size{backend="redis"})') == ["sublarr_cache_size"]
    assert summed('max(sublarr_job_queue_size{job=~"$job"})') == []


def test_shared_families_are_the_web_roles():
    assert SHARED_SOURCES == {"database", "job_queue", "wanted", "queue", "redis"}
    assert set(SHARED_FAMILIES) == {"sublarr_job_queue_size", "sublarr_wanted_queue_size",
                                    "sublarr_database_size_bytes", "sublarr_redis_memory_used_bytes",
                                    "sublarr_redis_connected"}
    assert SHARED_BACKEND == {"sublarr_queue_size": "rq", "sublarr_queue_active_jobs": "rq",
                              "sublarr_queue_failed_jobs": "rq", "sublarr_cache_hits_total": "redis",
                              "sublarr_cache_misses_total": "redis", "sublarr_cache_size": "redis"}
