"""``sublarr-database``: the state Sublarr depends on.

Connection pool, queries, cache, Redis and the job queue.
"""
from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from .common import (BYTES, COUNT, GREEN, OPS, ORANGE, RATIO, RED, SECONDS, STATE, Target,
                     cache_gauge, cache_rate, gauge_panel, new_dashboard, per_process, quantile,
                     queue_gauge, rate, sel, shared, stat_panel, table_panel, timeseries_panel, to_dict, up_stat_panel)

UID = "sublarr-database"
TITLE = "Sublarr / Database, cache and queue"
WHEN = {  # row -> when to look at it (the monitoring guide is generated from these and the panels)
    "Connection pool": "When requests or jobs wait on the database (latency up while CPU stays low): "
                       "utilisation near 100% means the pool is too small for the threads using it.",
    "Queries": "When the database is the slow part: a p95 rising for one operation, or a query rate "
               "far above the request rate (one query per item in a loop).",
    "Cache": "When providers or metadata look-ups are called more often than expected: a falling hit "
             "ratio means the cache no longer saves those calls.",
    "Job queue": "When work is queued but does not finish: waiting rising while active stays 0 means "
                 "no worker runs; failed rising means jobs raise (see the Jobs dashboard).",
    "Redis": "Only with Redis configured (SUBLARR_REDIS_URL), hence collapsed: open it when the Redis "
             "alert fires, the RQ queue stalls or Redis memory grows.",
}

POOL_BY_PROCESS = ("job", "instance")


def pool_row(d: db.Dashboard) -> db.Dashboard:
    checked_out = per_process("sublarr_db_pool_checked_out", POOL_BY_PROCESS)
    size = per_process("sublarr_db_pool_size", POOL_BY_PROCESS)
    return (d.with_row(db.Row("Connection pool"))
            .with_panel(timeseries_panel(
                "Pool connections", "Per process: connections checked out now, the configured pool "
                "size, and SQLAlchemy's overflow() (negative until the pool has opened pool_size "
                "connections; positive: connections beyond the pool size). SQLite's default pools "
                "have no size and show no series here.", COUNT,
                [Target(checked_out, "checked out {{instance}}"),
                 Target(size, "size {{instance}}"),
                 Target(per_process("sublarr_db_pool_overflow", POOL_BY_PROCESS), "overflow {{instance}}")],
                width=12))
            .with_panel(gauge_panel(
                "Pool utilisation", "Checked-out connections as a share of the pool size, in the "
                "busiest process. Above 100%: the pool is using overflow connections.", RATIO,
                [Target(f"max({checked_out} / {size})", "busiest process")],
                thresholds=[(None, GREEN), (0.8, ORANGE), (1, RED)], max_value=1, width=4, height=8))
            .with_panel(table_panel(
                "Database backend", "SQLAlchemy dialect each process uses.", STATE,
                [Target(per_process("sublarr_db_backend_info", ("job", "instance", "dialect")),
                        instant=True, table=True)],
                hide=("Time", "Value"), width=8)))


def queries_row(d: db.Dashboard) -> db.Dashboard:
    return (d.with_row(db.Row("Queries"))
            .with_panel(timeseries_panel(
                "Query rate by operation", "Statements executed per second, by operation, over all "
                "processes (RQ workers included).", OPS,
                [Target(rate("sublarr_db_queries_total", ("operation",)), "{{operation}}")], stack=True))
            .with_panel(timeseries_panel(
                "Query p95 by operation", "95th percentile of statement execution time, by operation. "
                "With tracing on, exemplars mark sampled statements; their trace_id opens the trace in "
                "$traces.",
                SECONDS, [Target(quantile(0.95, "sublarr_db_query_duration_seconds", ("operation",)),
                                 "{{operation}}")], exemplars=True)))


def cache_row(d: db.Dashboard) -> db.Dashboard:
    hits, misses = cache_rate("sublarr_cache_hits_total"), cache_rate("sublarr_cache_misses_total")
    return (d.with_row(db.Row("Cache"))
            .with_panel(timeseries_panel(
                "Cache hit ratio", "Share of cache lookups that found a value, by backend. A Redis "
                "cache's counts live in Redis and are read once; memory caches add up over processes.",
                RATIO, [Target(f"{hits} / ({hits} + {misses})", "{{backend}}")],
                min_value=0, max_value=1, width=8))
            .with_panel(timeseries_panel(
                "Cache lookups", "Cache hits and misses per second, by backend.", OPS,
                [Target(hits, "hits {{backend}}"), Target(misses, "misses {{backend}}")], width=8))
            .with_panel(timeseries_panel(
                "Cache size", "Entries in the cache, by backend (Redis: one reading of the shared "
                "cache; memory: summed over processes).", COUNT,
                [Target(cache_gauge("sublarr_cache_size"), "{{backend}}")], width=8)))


def redis_row(d: db.Dashboard) -> db.Dashboard:
    """Collapsed by default: Redis is optional, and without it the row has no data."""
    row = (db.Row("Redis")
           .with_panel(up_stat_panel(
               "Redis connection", "1 when every process's last Redis round trip succeeded within its "
               "time bound (the lowest reading wins). No value: Redis is not configured.",
               [f"min({sel('sublarr_redis_connected')})"],
               width=6, height=8))
           .with_panel(timeseries_panel(
               "Redis memory", "Memory used by Redis (INFO memory used_memory), one reading.", BYTES,
               [Target(shared("sublarr_redis_memory_used_bytes"), "used memory")], width=18))
           .collapsed(True))
    return d.with_row(row)


def queue_row(d: db.Dashboard) -> db.Dashboard:
    return (d.with_row(db.Row("Job queue"))
            .with_panel(timeseries_panel(
                "Queue depth", "Jobs waiting, running and failed, by queue backend. An RQ queue is "
                "read once (every web process sees the same queue in Redis); in-memory queues add up "
                "over processes.", COUNT,
                [Target(queue_gauge("sublarr_queue_size"), "waiting {{backend}}"),
                 Target(queue_gauge("sublarr_queue_active_jobs"), "active {{backend}}"),
                 Target(queue_gauge("sublarr_queue_failed_jobs"), "failed {{backend}}")], width=18))
            .with_panel(stat_panel(
                "Failed jobs", "Failed jobs the queue keeps (RQ: the failed job registry, all of it).",
                COUNT, [Target(f"sum({queue_gauge('sublarr_queue_failed_jobs')})", "failed")],
                thresholds=[(None, GREEN), (1, ORANGE)], width=6, height=8)))


def build() -> dict:
    d = new_dashboard(UID, TITLE, "Sublarr's database pool and queries, cache, Redis and job queue.")
    for row in (pool_row, queries_row, cache_row, queue_row, redis_row):  # optional Redis last, collapsed
        d = row(d)
    return to_dict(d)
