"""The single source of truth for every ``sublarr_*`` metric family.

Instruments, views, the exposition checks, the generated metric reference and
the dashboards' validity tests are all derived from :data:`FAMILIES`, so a name,
a label key or a bucket boundary cannot drift in one place only. The table
is the public contract (docs/metrics.md, held to tests/golden/contract.json);
changing it is changing that contract.

Names are the Prometheus family names users query, and the instruments carry
exactly these names, ``_total`` included: the Python Prometheus bridge does not
add ``_total`` twice, and the collector's Prometheus exporter (suffixes off)
then passes OTLP names through unchanged, so both paths agree by
construction. Units are set on instruments for OTLP consumers; the names
already end with the unit word, so no bridge appends it again. Bucket bounds keep the
contract's spelling: integral bounds are ints so they render as ``le="1"``,
the same text the collector's Go exporter produces.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from . import __meta__

METER_NAME = "sublarr"
"""Instrumentation scope of every contract instrument."""

OTHER = "other"
"""Label value that absorbs anything outside a bounded set."""

OVERFLOW = "_overflow"
"""Every label of the one series that absorbs new label sets once a family
reached its series cap (``SUBLARR_METRICS_MAX_SERIES``)."""


class Kind(str, enum.Enum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


@dataclass(frozen=True)
class Label:
    """A label key and what bounds its values.

    Exactly one bound applies: a closed ``values`` set, a ``pattern`` every value
    must match, or ``dynamic`` (a set fixed at start-up, such as route templates
    or configured provider names, capped at ``cap`` distinct values).
    """

    key: str
    bound: str
    values: frozenset[str] | None = None
    pattern: str | None = None
    dynamic: bool = False
    cap: int = 0
    fallback: str | None = None

    def allows(self, value: str) -> bool:
        """True when ``value`` is inside this label's static bound.

        Dynamic labels are checked against the set known at run time by the
        caller; here they only need to be non-empty strings. Any label may
        carry :data:`OVERFLOW` (the series cap folded its label set).
        """
        if value == OVERFLOW:
            return True
        if self.values is not None:
            return value in self.values
        if self.pattern is not None:
            return re.fullmatch(self.pattern, value) is not None
        return isinstance(value, str) and value != ""


@dataclass(frozen=True)
class Family:
    name: str
    kind: Kind
    unit: str
    description: str
    group: str
    labels: tuple[Label, ...] = ()
    buckets: tuple[float, ...] | None = None
    notes: str = ""
    source: str = ""
    shared: bool | str = False
    """True when every process reads the value from the same external thing (the
    database, Redis), or the ``backend`` label value whose series are (an RQ queue,
    a Redis cache). Added up over processes it would count once per process, so
    dashboards and rules take one reading (``max``)."""

    @property
    def instrument_name(self) -> str:
        """Name given to the OpenTelemetry instrument: the Prometheus name itself."""
        return self.name

    @property
    def label_keys(self) -> tuple[str, ...]:
        return tuple(label.key for label in self.labels)

    def label(self, key: str) -> Label:
        for label in self.labels:
            if label.key == key:
                return label
        raise KeyError(f"{self.name} has no label {key!r}")

    def sample_names(self) -> tuple[str, ...]:
        """Every sample name this family exposes in the text format."""
        if self.kind is Kind.HISTOGRAM:
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)


# --- label vocabularies ------------------------------------------------------

HTTP_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
OTHER_METHOD = "_OTHER"
UNMATCHED_ENDPOINT = "<unmatched>"
SCRAPE_ENVIRON_KEY = "sublarr_telemetry.scrape"
"""WSGI environ key set when the app's own route serves the exposition
(``generate_metrics()`` in a request): that request is not measured."""
DB_OPERATIONS = frozenset({"select", "insert", "update", "delete", "other"})
CACHE_BACKENDS = frozenset({"memory", "redis"})
QUEUE_BACKENDS = frozenset({"memory", "rq"})
TRANSLATION_STATUSES = frozenset({"success", "failed", "skipped"})
SUBTITLE_FORMATS = frozenset({"ass", "ssa", "srt", "vtt", "sub", "idx", "sup", "smi", "txt", OTHER})
PROVIDER_SEARCH_STATUSES = frozenset({"success", "failed", "circuit_open", "timeout", "no_results", OTHER})
PROVIDER_LABEL_CAP = 64
QUEUE_LABEL_CAP = 16
FUNCTION_LABEL_CAP = 32
JOB_STATUSES = frozenset({"finished", "failed", "stopped", "canceled", OTHER})
SOURCES = frozenset({"pool", "database", "job_queue", "wanted", "cache", "redis", "queue", "breakers", "process",
                     "disk", "info"})

_method = Label("method", "standard HTTP methods, else `_OTHER`",
                values=HTTP_METHODS | {OTHER_METHOD}, fallback=OTHER_METHOD)
_endpoint = Label("endpoint", "the app's route templates, or `<unmatched>`",
                  dynamic=True, fallback=UNMATCHED_ENDPOINT)
_status = Label("status", "HTTP status code as a string", pattern=r"[1-5][0-9][0-9]")
_operation = Label("operation", "select, insert, update, delete, other",
                   values=DB_OPERATIONS, fallback="other")
_cache_backend = Label("backend", "memory, redis", values=CACHE_BACKENDS)
_queue_backend = Label("backend", "memory, rq", values=QUEUE_BACKENDS)
_provider = Label("provider", f"configured provider names (at most {PROVIDER_LABEL_CAP}, else other)",
                  dynamic=True, cap=PROVIDER_LABEL_CAP, fallback=OTHER)
_format = Label("format", "known subtitle formats, else other",
                values=SUBTITLE_FORMATS, fallback=OTHER)

_queue = Label("queue", f"RQ queue names (at most {QUEUE_LABEL_CAP}, else other)",
               dynamic=True, cap=QUEUE_LABEL_CAP, fallback=OTHER)
_function = Label("function", "registered job functions (SUBLARR_METRICS_JOB_FUNCTIONS), else other; "
                  f"unregistered: the first {FUNCTION_LABEL_CAP} seen",
                  dynamic=True, cap=FUNCTION_LABEL_CAP, fallback=OTHER)
_job_status = Label("status", "finished, failed, stopped, canceled, other", values=JOB_STATUSES, fallback=OTHER)

HTTP_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
DB_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5)
TRANSLATION_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600)
JOB_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800)

FAMILIES: tuple[Family, ...] = (
    # HTTP
    Family("sublarr_http_request_duration_seconds", Kind.HISTOGRAM, "s",
           "Time from receiving an HTTP request until its response starts, by route template.",
           "http", (_method, _endpoint, _status), HTTP_BUCKETS,
           source="WSGI middleware"),
    Family("sublarr_http_requests_total", Kind.COUNTER, "",
           "HTTP requests completed, by method, route template and status code.",
           "http", (_method, _endpoint, _status),
           notes="Same label sets as the duration histogram.", source="WSGI middleware"),
    Family("sublarr_http_requests_in_progress", Kind.GAUGE, "",
           "HTTP requests being served now (the metrics path and excluded paths are not counted).",
           "http", source="WSGI middleware"),
    # Database
    Family("sublarr_db_query_duration_seconds", Kind.HISTOGRAM, "s",
           "Database statement execution time, by operation.",
           "database", (_operation,), DB_BUCKETS, source="SQLAlchemy cursor events"),
    Family("sublarr_db_queries_total", Kind.COUNTER, "",
           "Database statements executed, by operation.",
           "database", (_operation,), source="SQLAlchemy cursor events"),
    Family("sublarr_db_pool_size", Kind.GAUGE, "",
           "Configured size of the database connection pool.",
           "database", notes="Absent for pools without a size (NullPool, StaticPool, in-memory SQLite's "
           "SingletonThreadPool).",
           source="pool callback"),
    Family("sublarr_db_pool_checked_out", Kind.GAUGE, "",
           "Database connections checked out of the pool now.",
           "database", source="pool callback"),
    Family("sublarr_db_pool_overflow", Kind.GAUGE, "",
           "SQLAlchemy pool overflow(): connections beyond pool_size in use.",
           "database", notes="Negative until the pool has opened pool_size connections "
           "(SQLAlchemy counts overflow from -pool_size).", source="pool callback"),
    Family("sublarr_db_backend_info", Kind.GAUGE, "",
           "Database backend in use (value 1).",
           "database", (Label("dialect", "SQLAlchemy dialect name", pattern=r"[a-z0-9_]+"),),
           source="engine callback"),
    Family("sublarr_database_size_bytes", Kind.GAUGE, "By",
           "Size of the database: the SQLite file, or PostgreSQL pg_database_size.",
           "database", source="database callback", shared=True),
    # Cache
    Family("sublarr_cache_hits_total", Kind.COUNTER, "",
           "Cache lookups that found a value.", "cache", (_cache_backend,),
           source="cache get_stats callback", shared="redis"),
    Family("sublarr_cache_misses_total", Kind.COUNTER, "",
           "Cache lookups that found nothing.", "cache", (_cache_backend,),
           source="cache get_stats callback", shared="redis"),
    Family("sublarr_cache_size", Kind.GAUGE, "",
           "Entries in the cache.", "cache", (_cache_backend,), source="cache get_stats callback", shared="redis"),
    # Redis
    Family("sublarr_redis_connected", Kind.GAUGE, "",
           "1 when a Redis round trip succeeded within its time bound, else 0.",
           "redis", source="Redis probe", shared=True),
    Family("sublarr_redis_memory_used_bytes", Kind.GAUGE, "By",
           "Memory used by Redis (INFO memory used_memory).", "redis", source="Redis probe", shared=True),
    # Queues
    Family("sublarr_queue_size", Kind.GAUGE, "",
           "Jobs waiting in the job queue.", "queue", (_queue_backend,), source="queue callback", shared="rq"),
    Family("sublarr_queue_active_jobs", Kind.GAUGE, "",
           "Jobs running now.", "queue", (_queue_backend,), source="queue callback", shared="rq"),
    Family("sublarr_queue_failed_jobs", Kind.GAUGE, "",
           "Failed jobs kept by the queue (all of them, no cap).", "queue", (_queue_backend,),
           source="queue callback", shared="rq"),
    Family("sublarr_job_queue_size", Kind.GAUGE, "",
           "Translation jobs pending in the database.", "queue", source="database callback", shared=True),
    Family("sublarr_wanted_queue_size", Kind.GAUGE, "",
           "Wanted subtitle items in the database.", "queue", source="database callback", shared=True),
    # Subtitle work
    Family("sublarr_translation_total", Kind.COUNTER, "",
           "Translations finished, by outcome and subtitle format.", "subtitles",
           (Label("status", "success, failed, skipped", values=TRANSLATION_STATUSES, fallback="failed"),
            _format), source="events.translation_finished"),
    Family("sublarr_translation_duration_seconds", Kind.HISTOGRAM, "s",
           "Time a translation took.", "subtitles", (), TRANSLATION_BUCKETS,
           source="events.translation_finished"),
    Family("sublarr_provider_search_total", Kind.COUNTER, "",
           "Subtitle provider searches, by provider and outcome.", "subtitles",
           (_provider, Label("status", "success, failed, circuit_open, timeout, no_results, other",
                             values=PROVIDER_SEARCH_STATUSES, fallback=OTHER)),
           source="events.provider_searched"),
    Family("sublarr_provider_download_total", Kind.COUNTER, "",
           "Subtitle downloads, by provider and format.", "subtitles", (_provider, _format),
           source="events.provider_downloaded"),
    Family("sublarr_circuit_breaker_state", Kind.GAUGE, "",
           "Provider circuit breaker state: 0 closed, 1 open, 2 half_open.", "subtitles",
           (_provider,), source="circuit breaker callback"),
    # Process and app
    Family("sublarr_cpu_usage_percent", Kind.GAUGE, "%",
           "CPU used by this process since the previous reading, in percent of one core.",
           "process", source="process callback"),
    Family("sublarr_memory_usage_bytes", Kind.GAUGE, "By",
           "Resident memory of this process.", "process", source="process callback"),
    Family("sublarr_disk_usage_percent", Kind.GAUGE, "%",
           "Used space of the file system holding each configured data path.", "process",
           (Label("mount", "configured data paths", dynamic=True),), source="disk callback"),
    Family("sublarr_info", Kind.GAUGE, "",
           "Static facts about this Sublarr process (value 1).", "process",
           (Label("version", "the running version", pattern=r"[0-9A-Za-z.+_-]+"),),
           source="constant"),
    # Background jobs (beyond the contract; recorded by the RQ worker integration)
    Family("sublarr_job_duration_seconds", Kind.HISTOGRAM, "s",
           "Time a background job took, by queue, function and final status.", "jobs",
           (_queue, _function, _job_status), JOB_BUCKETS, source="telemetry.rq_worker"),
    Family("sublarr_jobs_total", Kind.COUNTER, "",
           "Background jobs finished, by queue, function and final status.", "jobs",
           (_queue, _function, _job_status), source="telemetry.rq_worker"),
    # Telemetry's own health (beyond the contract)
    Family("sublarr_telemetry_source_up", Kind.GAUGE, "",
           "1 when the state source answered its last read in time, else 0.", "telemetry",
           (Label("source", "telemetry state sources", values=SOURCES),), source="callback layer"),
    Family("sublarr_telemetry_source_errors_total", Kind.COUNTER, "",
           "State source reads that failed or ran past their time budget.", "telemetry",
           (Label("source", "telemetry state sources", values=SOURCES),), source="callback layer"),
    Family("sublarr_telemetry_series_overflow_total", Kind.COUNTER, "",
           "Recordings folded into a family's `_overflow` series because it reached its series cap.",
           "telemetry", (Label("family", "catalog family names", pattern=r"sublarr_[a-z0-9_]+"),),
           source="cardinality guard"),
    Family("sublarr_telemetry_label_values_sanitized_total", Kind.COUNTER, "",
           "Distinct label values rewritten so the exposition stays valid: undecodable bytes and surrogates "
           "became U+FFFD, values over 256 characters were cut.",
           "telemetry", (Label("family", "catalog family names", pattern=r"sublarr_[a-z0-9_]+"),),
           notes="Families fed by the app (HTTP, queries, events, jobs) read 0 until their first rewrite; "
           "families read from state sources appear with theirs.",
           source="label sanitiser"),
)

_BY_NAME = {family.name: family for family in FAMILIES}


def family(name: str) -> Family:
    """The family called ``name``; raises KeyError naming it otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a catalog family") from None


def families(group: str | None = None) -> tuple[Family, ...]:
    return tuple(f for f in FAMILIES if group is None or f.group == group)


SERVICE_NAME_DEFAULT = "sublarr"
VERSION = __meta__.VERSION
