"""Recording rules: request, query, cache, subtitle and job rates and p95s per job.

Counters and histograms are summed over instances, so any number of
processes add up; each rule keeps the labels its level names.
"""
from __future__ import annotations

from typing import Sequence

from telemetry.catalog import Family

from .model import Group, Record
from .promql import JOB, RATE_WINDOW, counter_metric, family, quantile, record_name, summed_rate

P95 = 0.95

HTTP_REQUESTS = family("sublarr_http_requests_total")
HTTP_DURATION = family("sublarr_http_request_duration_seconds")
DB_QUERIES = family("sublarr_db_queries_total")
DB_DURATION = family("sublarr_db_query_duration_seconds")
CACHE_HITS = family("sublarr_cache_hits_total")
CACHE_MISSES = family("sublarr_cache_misses_total")
TRANSLATIONS = family("sublarr_translation_total")
PROVIDER_SEARCHES = family("sublarr_provider_search_total")
PROVIDER_DOWNLOADS = family("sublarr_provider_download_total")
JOBS = family("sublarr_jobs_total")
JOB_DURATION = family("sublarr_job_duration_seconds")


def rate_record(counter: Family, labels: Sequence[str], comment: str = "") -> Record:
    """``<labels>:<counter without _total>:rate5m``."""
    return Record(record_name(labels, counter_metric(counter), f"rate{RATE_WINDOW}"),
                  summed_rate(counter, labels), comment)


def p95_record(histogram: Family, labels: Sequence[str], comment: str = "") -> Record:
    """``<labels>:<histogram>:p95_5m``."""
    return Record(record_name(labels, histogram.name, f"p{round(P95 * 100)}_{RATE_WINDOW}"),
                  quantile(P95, histogram, labels), comment)


def _http_5xx_ratio() -> Record:
    errors = summed_rate(HTTP_REQUESTS, JOB, 'status=~"5.."')
    requests = summed_rate(HTTP_REQUESTS, JOB)
    return Record(
        record_name(JOB, f"{counter_metric(HTTP_REQUESTS)}_5xx", f"ratio_rate{RATE_WINDOW}"),
        f"(\n    {errors}\n  or\n    0 * {requests}\n)\n/\n{requests}\n",
        "0 (not absent) when requests arrive and none fails.")


def _cache_hit_ratio() -> Record:
    hits, misses = summed_rate(CACHE_HITS, JOB), summed_rate(CACHE_MISSES, JOB)
    return Record(
        record_name(JOB, "sublarr_cache_hit_ratio", f"ratio_rate{RATE_WINDOW}"),
        f"{hits}\n/\n(\n    {hits}\n  +\n    {misses}\n)\n",
        "Cache. A Redis cache's counts are shared by every process that reports them; numerator and "
        "denominator then grow alike, so the ratio holds.")


HTTP_5XX_RATIO = _http_5xx_ratio()
HTTP_P95 = p95_record(HTTP_DURATION, JOB)

GROUP = Group("sublarr.recording", (
    rate_record(HTTP_REQUESTS, JOB, "HTTP"),
    rate_record(HTTP_REQUESTS, ("job", "status")),
    HTTP_5XX_RATIO,
    HTTP_P95,
    p95_record(HTTP_DURATION, ("job", "endpoint")),
    rate_record(DB_QUERIES, ("job", "operation"), "Database"),
    p95_record(DB_DURATION, ("job", "operation")),
    _cache_hit_ratio(),
    rate_record(TRANSLATIONS, ("job", "status"), "Subtitle work"),
    rate_record(PROVIDER_SEARCHES, ("job", "provider", "status")),
    rate_record(PROVIDER_DOWNLOADS, ("job", "provider")),
    rate_record(JOBS, ("job", "function", "status"), "Background jobs"),
    p95_record(JOB_DURATION, ("job", "function")),
))
