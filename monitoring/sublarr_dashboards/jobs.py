"""``sublarr-jobs``: background jobs, the processes behind them, and the telemetry itself."""
from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from .common import (BYTES, COUNT, OPS, PERCENT, SECONDS, STATE, Target,
                     bargauge_panel, increase_over_range, new_dashboard, per_process, quantile, rate, sel,
                     table_panel, timeseries_panel, to_dict, up_stat_panel)

UID = "sublarr-jobs"
TITLE = "Sublarr / Jobs and instances"
WHEN = {  # row -> when to look at it (the monitoring guide is generated from these and the panels)
    "Background jobs": "With RQ workers, when jobs slow down or fail: which job function, and since "
                       "when. Empty without telemetry's RQ workers (scraped on SUBLARR_METRICS_LISTEN or pushing "
                       "through the collector).",
    "Instances": "When numbers look doubled, missing or stale: which processes report and in which "
                 "version, whether Prometheus reaches its targets, which process uses the CPU or memory.",
    "Telemetry": "When a panel elsewhere is empty or flat: a state source that fails or is too slow, "
                 "or a family folding new label sets into _overflow, explains the missing series.",
}

PROCESS = ("job", "instance")


def jobs_row(d: db.Dashboard) -> db.Dashboard:
    return (d.with_row(db.Row("Background jobs"))
            .with_panel(timeseries_panel(
                "Job duration by function", "Median and 95th percentile of the time a background job "
                "took, by job function (recorded by the RQ workers). With tracing on, exemplars mark "
                "sampled jobs; their trace_id opens the job's trace in $traces.", SECONDS,
                [Target(quantile(0.5, "sublarr_job_duration_seconds", ("function",)), "p50 {{function}}"),
                 Target(quantile(0.95, "sublarr_job_duration_seconds", ("function",)), "p95 {{function}}")],
                width=12, exemplars=True))
            .with_panel(timeseries_panel(
                "Job outcomes", "Background jobs finished per second, by function and final status "
                "(finished, failed, stopped, canceled).", OPS,
                [Target(rate("sublarr_jobs_total", ("function", "status")), "{{function}} {{status}}")],
                width=12, stack=True))
            .with_panel(bargauge_panel(
                "Jobs in the time range", "Background jobs that ended within the dashboard's time "
                "range, by final status.", COUNT,
                [Target(increase_over_range("sublarr_jobs_total", ("status",)), "{{status}}", instant=True)],
                width=24, height=6)))


def instances_row(d: db.Dashboard) -> db.Dashboard:
    return (d.with_row(db.Row("Instances"))
            .with_panel(table_panel(
                "Processes", "Every Sublarr process Prometheus knows (sublarr_info): web processes "
                "scraped directly or pushing through the collector, and RQ workers.", STATE,
                [Target(per_process("sublarr_info", ("job", "instance", "version")), instant=True, table=True)],
                hide=("Time", "Value"), width=12))
            .with_panel(up_stat_panel(
                "Scrape targets", "Prometheus's up for each scraped target: the app's metrics path and "
                "the collector. Processes that push through the collector have no target of their "
                "own; they are up while their series arrive (see Processes).",
                [Target(f"sum by (job, instance) ({sel('up')})", "{{job}} {{instance}}")],
                graph=False, width=12, height=8))
            .with_panel(timeseries_panel(
                "CPU by instance", "CPU used by each process, in percent of one core.", PERCENT,
                [Target(per_process("sublarr_cpu_usage_percent", PROCESS), "{{job}} {{instance}}")]))
            .with_panel(timeseries_panel(
                "Memory by instance", "Resident memory of each process.", BYTES,
                [Target(per_process("sublarr_memory_usage_bytes", PROCESS), "{{job}} {{instance}}")])))


def telemetry_row(d: db.Dashboard) -> db.Dashboard:
    return (d.with_row(db.Row("Telemetry"))
            .with_panel(up_stat_panel(
                "State sources", "Whether each telemetry state source (pool, database, cache, redis, "
                "queue, ...) answered its last read in time, the worst over all processes. A source "
                "that is down loses only its own series.",
                [Target(f"min by (source) ({sel('sublarr_telemetry_source_up')})", "{{source}}")],
                graph=False, width=8, height=8))
            .with_panel(timeseries_panel(
                "State source errors", "State source reads per second that failed or ran past their "
                "time budget, by source, over all processes.", OPS,
                [Target(rate("sublarr_telemetry_source_errors_total", ("source",)), "{{source}}")],
                width=8))
            .with_panel(timeseries_panel(
                "Series cap overflow", "Recordings per second folded into a family's _overflow series "
                "because the family reached its cap of label sets (SUBLARR_METRICS_MAX_SERIES). No "
                "data is good news: the counter appears with a family's first fold.", OPS,
                [Target(rate("sublarr_telemetry_series_overflow_total", ("family",)), "{{family}}")],
                width=8))
            .with_panel(bargauge_panel(
                "Label values rewritten", "Distinct label values each family had to rewrite so the "
                "exposition stays valid (not valid UTF-8, or over 256 characters), summed over all "
                "processes. Zero is good news; otherwise a caller passes odd values, and the log "
                "names the first one per family.", COUNT,
                [Target(per_process("sublarr_telemetry_label_values_sanitized_total", ("family",)),
                        "{{family}}", instant=True)],
                width=24, height=6)))


def build() -> dict:
    d = new_dashboard(UID, TITLE, "Sublarr's background jobs, its processes and the health of its telemetry.")
    for row in (jobs_row, instances_row, telemetry_row):
        d = row(d)
    return to_dict(d)
