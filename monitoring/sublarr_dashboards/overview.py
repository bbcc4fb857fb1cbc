"""``sublarr-overview``: is Sublarr doing its work, and how fast?

Translations, providers and breakers, the job backlog, HTTP traffic and the
processes' resources, on one page.
"""
from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from .common import (BREAKER_MAPPINGS, BYTES, COUNT, GREEN, OPS, ORANGE, PERCENT, RATIO, RED, REQ_PER_S,
                     SECONDS, STATE, Target, gauge_panel, new_dashboard, per_process,
                     quantile, queue_gauge, rate, sel, shared, stat_panel, timeseries_panel, to_dict, up_stat_panel)

UID = "sublarr-overview"
TITLE = "Sublarr / Overview"
WHEN = {  # row -> when to look at it (the monitoring guide is generated from these and the panels)
    "Summary": "First, after an alert, a user's report or an upgrade: six numbers that say whether "
               "Sublarr answers, works through its jobs and reaches its providers and Redis.",
    "Subtitles": "When subtitles stop arriving or arrive late: failed translations rising, a provider "
                 "whose searches fail or whose breaker opened, a backlog that grows instead of draining.",
    "HTTP": "When the web UI or the API is slow or returns errors: which status codes rise, and which "
            "route is slow.",
    "Resources": "When the host runs short of memory or disk, or Sublarr slows down without more "
                 "traffic; and for sizing the machine.",
}

SERVER_ERRORS = 'status=~"5.."'
HTTP_5XX_RATIO = (rate("sublarr_http_requests_total", (), SERVER_ERRORS) + " / "
                  + rate("sublarr_http_requests_total"))


def summary_row(d: db.Dashboard) -> db.Dashboard:
    return (d.with_row(db.Row("Summary"))
            .with_panel(stat_panel(
                "Request rate", "HTTP requests per second over all processes (metrics path and health "
                "checks are not counted).", REQ_PER_S, [rate("sublarr_http_requests_total")]))
            .with_panel(stat_panel(
                "5xx ratio", "Share of HTTP requests answered with a 5xx status. Unhandled exceptions "
                "count as 500.", RATIO, [HTTP_5XX_RATIO],
                thresholds=[(None, GREEN), (0.01, ORANGE), (0.05, RED)]))
            .with_panel(stat_panel(
                "HTTP p95 latency", "95th percentile of the time until a response starts, over all "
                "routes and processes.", SECONDS, [quantile(0.95, "sublarr_http_request_duration_seconds")],
                thresholds=[(None, GREEN), (0.5, ORANGE), (1, RED)]))
            .with_panel(stat_panel(
                "Active jobs", "Background jobs running now (RQ: the queue's started registry, read "
                "once; in-memory queue: summed over processes).", COUNT,
                [f"sum({queue_gauge('sublarr_queue_active_jobs')})"]))
            .with_panel(stat_panel(
                "Breakers not closed", "Providers whose circuit breaker is open or half open in at "
                "least one process: searches skip them.", COUNT,
                [f"sum(max by (provider) ({sel('sublarr_circuit_breaker_state')}) > bool 0)"],
                thresholds=[(None, GREEN), (1, RED)], graph=False))
            .with_panel(up_stat_panel(
                "Redis", "Whether every process reaches Redis within its time bound (the lowest "
                "reading wins). No value: Redis is not configured.",
                [f"min({sel('sublarr_redis_connected')})"],
                graph=False)))


def subtitles_row(d: db.Dashboard) -> db.Dashboard:
    return (d.with_row(db.Row("Subtitles"))
            .with_panel(timeseries_panel(
                "Translations by status", "Translations finished per second, by outcome "
                "(success, failed, skipped), over all processes including RQ workers.", OPS,
                [Target(rate("sublarr_translation_total", ("status",)), "{{status}}")], stack=True))
            .with_panel(timeseries_panel(
                "Translation duration", "Median and 95th percentile of the time a translation took.",
                SECONDS,
                [Target(quantile(0.5, "sublarr_translation_duration_seconds"), "p50"),
                 Target(quantile(0.95, "sublarr_translation_duration_seconds"), "p95")]))
            .with_panel(timeseries_panel(
                "Provider searches", "Subtitle searches per second, by provider and outcome "
                "(circuit_open: skipped because the breaker is open).", OPS,
                [Target(rate("sublarr_provider_search_total", ("provider", "status")),
                        "{{provider}} {{status}}")], width=8))
            .with_panel(timeseries_panel(
                "Provider downloads", "Subtitle downloads per second, by provider.", OPS,
                [Target(rate("sublarr_provider_download_total", ("provider",)), "{{provider}}")], width=8))
            .with_panel(stat_panel(
                "Circuit breakers", "Breaker state per provider, the worst over all processes: "
                "closed, open (calls skipped) or half open (one probe call allowed).", STATE,
                [Target(f"max by (provider) ({sel('sublarr_circuit_breaker_state')})", "{{provider}}")],
                thresholds=[(None, GREEN), (1, RED), (2, ORANGE)], mappings=BREAKER_MAPPINGS,
                graph=False, width=8, height=8))
            .with_panel(timeseries_panel(
                "Work backlog", "Jobs waiting in and running from the job queue, translation jobs "
                "pending in the database and wanted subtitles not found yet.", COUNT,
                [Target(f"sum({queue_gauge('sublarr_queue_size')})", "queue waiting"),
                 Target(f"sum({queue_gauge('sublarr_queue_active_jobs')})", "queue active"),
                 Target(shared("sublarr_job_queue_size"), "translations pending"),
                 Target(shared("sublarr_wanted_queue_size"), "wanted items")], width=24)))


def http_row(d: db.Dashboard) -> db.Dashboard:
    return (d.with_row(db.Row("HTTP"))
            .with_panel(timeseries_panel(
                "Requests by status", "HTTP requests per second by status code, over all processes.",
                REQ_PER_S, [Target(rate("sublarr_http_requests_total", ("status",)), "{{status}}")],
                width=8, stack=True))
            .with_panel(timeseries_panel(
                "p95 latency by endpoint", "95th percentile of the time until a response starts, by "
                "route template (<unmatched>: no route matched). With tracing on, exemplars mark "
                "sampled requests; their trace_id opens the trace in $traces.", SECONDS,
                [Target(quantile(0.95, "sublarr_http_request_duration_seconds", ("endpoint",)),
                        "{{endpoint}}")], width=8, exemplars=True))
            .with_panel(timeseries_panel(
                "Requests in progress", "HTTP requests being served right now, over all processes.",
                COUNT, [Target(per_process("sublarr_http_requests_in_progress"), "in progress")],
                width=8)))


def resources_row(d: db.Dashboard) -> db.Dashboard:
    return (d.with_row(db.Row("Resources"))
            .with_panel(timeseries_panel(
                "CPU", "CPU used by the processes of each job, in percent of one core (100 = one "
                "core busy).", PERCENT,
                [Target(per_process("sublarr_cpu_usage_percent", ("job",)), "{{job}}")], width=6))
            .with_panel(timeseries_panel(
                "Memory", "Resident memory of the processes of each job.", BYTES,
                [Target(per_process("sublarr_memory_usage_bytes", ("job",)), "{{job}}")], width=6))
            .with_panel(timeseries_panel(
                "Database size", "Size of the database: the SQLite file or PostgreSQL's "
                "pg_database_size (one reading: every process sees the same database).", BYTES,
                [Target(shared("sublarr_database_size_bytes"), "database")], width=6))
            .with_panel(gauge_panel(
                "Disk usage", "Used space of the file system holding each configured data path.",
                PERCENT, [Target(shared("sublarr_disk_usage_percent", ("mount",)), "{{mount}}")],
                thresholds=[(None, GREEN), (80, ORANGE), (90, RED)], max_value=100, width=6, height=8)))


def build() -> dict:
    d = new_dashboard(UID, TITLE, "Sublarr at a glance: subtitle work, providers, HTTP and resources.")
    for row in (summary_row, subtitles_row, http_row, resources_row):
        d = row(d)
    return to_dict(d)
