"""Alerts: unreachable targets, HTTP errors and latency, stuck queues, failing jobs,
open circuit breakers, lost Redis, silent telemetry sources.

Every alert has a ``for``, a severity, a summary, a description and a
runbook section (monitoring/runbook.md, anchored by the alert's name).
"""
from __future__ import annotations

from .model import Alert, Group
from .promql import aggregate, family, gauge, one_reading
from .recording import HTTP_5XX_RATIO, HTTP_P95

SCRAPE_JOBS = ("sublarr", "otel-collector")
"""The scrape jobs of monitoring/prometheus/prometheus.yml."""

HTTP_ERROR_RATIO = 0.05
HTTP_P95_SECONDS = 2.5

QUEUE_SIZE = family("sublarr_queue_size")
QUEUE_FAILED = family("sublarr_queue_failed_jobs")
BREAKER_STATE = family("sublarr_circuit_breaker_state")
REDIS_CONNECTED = family("sublarr_redis_connected")
SOURCE_UP = family("sublarr_telemetry_source_up")

JOB_BACKEND = ("job", "backend")


def _queue_not_draining() -> Alert:
    waiting = one_reading(QUEUE_SIZE, JOB_BACKEND, gauge(QUEUE_SIZE, "min_over_time", "15m"))
    change = one_reading(QUEUE_SIZE, JOB_BACKEND, gauge(QUEUE_SIZE, "delta", "15m"))
    return Alert(
        "SublarrQueueNotDraining", f"{waiting} > 0\nand\n{change} >= 0\n", "5m", "warning",
        "The {{ $labels.backend }} job queue of {{ $labels.job }} is not draining.",
        "At least {{ $value }} jobs have been waiting in the {{ $labels.backend }} queue of {{ $labels.job }} "
        "at every moment of the last 20 minutes, and the backlog is not shrinking.",
        "Jobs have waited in the queue for the whole last 15 minutes and the backlog did not shrink: "
        "no worker is taking them, or workers cannot keep up. Shared RQ queues are seen by every web "
        "process: max.")


ALERTS = (
    Alert(
        "SublarrTargetDown", f'up{{job=~"{"|".join(SCRAPE_JOBS)}"}} == 0', "2m", "critical",
        "Prometheus cannot scrape {{ $labels.job }} at {{ $labels.instance }}.",
        "The {{ $labels.job }} target {{ $labels.instance }} has failed every scrape for 2 minutes; "
        "its sublarr_* series are stale and dashboards show gaps."),
    Alert(
        "SublarrHighHTTPErrorRate", f"{HTTP_5XX_RATIO.record} > {HTTP_ERROR_RATIO:g}", "10m", "warning",
        "{{ $labels.job }} answers {{ $value | humanizePercentage }} of HTTP requests with 5xx.",
        f"More than {HTTP_ERROR_RATIO:.0%} of the HTTP requests {{{{ $labels.job }}}} served over the last "
        "5 minutes ended with a 5xx status (unhandled exceptions count as 500), for 10 minutes."),
    Alert(
        "SublarrHighHTTPLatency", f"{HTTP_P95.record} > {HTTP_P95_SECONDS:g}", "10m", "warning",
        "{{ $labels.job }} HTTP p95 latency is {{ $value | humanizeDuration }}.",
        "The 95th percentile of the time until {{ $labels.job }} starts a response has been above "
        f"{HTTP_P95_SECONDS:g}s for 10 minutes."),
    _queue_not_draining(),
    Alert(
        "SublarrFailedJobsRising",
        f"{one_reading(QUEUE_FAILED, JOB_BACKEND, gauge(QUEUE_FAILED, 'delta', '10m'))} > 0", "20m", "warning",
        "Failed jobs keep accumulating in the {{ $labels.backend }} queue of {{ $labels.job }}.",
        "The {{ $labels.backend }} queue of {{ $labels.job }} has gained failed jobs in every 10-minute "
        "window for 20 minutes ({{ $value | humanize }} in the last 10 minutes).",
        "New failed jobs in every 10-minute window for 20 minutes: a single failure does not alert, a job "
        "that keeps failing does."),
    Alert(
        # Breakers live in each process: max asks "open in any of them".
        "SublarrCircuitBreakerOpen", f"{aggregate('max', ('job', 'provider'), gauge(BREAKER_STATE))} > 0",
        "5m", "warning",
        "The circuit breaker of provider {{ $labels.provider }} is open ({{ $labels.job }}).",
        "The circuit breaker of subtitle provider {{ $labels.provider }} has been open or half open for "
        "5 minutes in at least one {{ $labels.job }} process: searches and downloads skip it.",
        "Open (1) or half open (2) for 5 minutes: the breaker did not close again."),
    Alert(
        "SublarrAllProvidersOpen", f"{aggregate('min', ('job', 'instance'), gauge(BREAKER_STATE))} > 0",
        "5m", "critical",
        "Every provider's circuit breaker is open on {{ $labels.instance }} ({{ $labels.job }}).",
        "No subtitle provider's circuit breaker has been closed for 5 minutes in {{ $labels.job }} process "
        "{{ $labels.instance }}: it cannot search or download subtitles at all."),
    Alert(
        "SublarrRedisDisconnected", f"{gauge(REDIS_CONNECTED)} == 0", "2m", "critical",
        "{{ $labels.job }} process {{ $labels.instance }} cannot reach Redis.",
        "Redis round trips from {{ $labels.job }} process {{ $labels.instance }} have failed or timed out "
        "for 2 minutes: the Redis cache and the RQ job queue are unavailable to it."),
    Alert(
        "SublarrTelemetrySourceDown", f"{gauge(SOURCE_UP)} == 0", "10m", "warning",
        "Telemetry source {{ $labels.source }} is down on {{ $labels.instance }} ({{ $labels.job }}).",
        "The telemetry of {{ $labels.job }} process {{ $labels.instance }} has not read its "
        "{{ $labels.source }} state for 10 minutes (a missing table, a changed Sublarr shape, a late or "
        "failing dependency): the series of that source are absent or stale."),
)

GROUP = Group("sublarr.alerts", ALERTS)
