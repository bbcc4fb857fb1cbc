"""The observable-callback layer: readings become observations.

Every non-HTTP gauge (and the cache counters, which mirror the backend's own
statistics) is an observable instrument whose callback asks one
:class:`~telemetry.state.sources.Source` for its latest reading and maps it with a
small pure function. The objects read (engine, cache, queue, breakers) are
looked up through getters at collect time, so an app factory may attach them
after adopting telemetry. A source that fails or is late loses only its own
series; everything else in the scrape is unaffected.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from .. import catalog
from ..catalog import Kind
from ..discovery import Missing
from ..labels import LabelSanitizer
from . import breakers as breaker_state
from . import cache as cache_state
from . import process as process_state
from . import queue as queue_state
from . import redis as redis_state
from .sources import Source, constant
from .targets import StateTargets, target

__all__ = ["CallbackLayer", "DEFAULT_COUNT_QUERIES", "SHARED_SOURCES", "StateTargets"]

_log = logging.getLogger(__name__)
Points = Iterable[tuple[float, dict[str, str]]]

DEFAULT_COUNT_QUERIES = {
    "sublarr_job_queue_size": "SELECT count(*) FROM jobs WHERE status IN ('pending', 'queued')",
    "sublarr_wanted_queue_size": "SELECT count(*) FROM wanted_items WHERE status = 'wanted'",
}
"""Fallback SQL (on a separate, unmeasured connection) when the host's own count
functions (telemetry.discovery.HOST_COUNTS) are not loaded."""

SHARED_SOURCES = frozenset({"database", "job_queue", "wanted", "queue", "redis"})
"""State every process would read alike (one database, one Redis, one RQ queue):
reported by the web role only, so web and worker processes never double it.
Per-process state (pool, cache, breakers, process, disk, info) is reported everywhere."""


class CallbackLayer:
    def __init__(self, meter: Meter, targets: StateTargets, *, budget: float = 1.0,
                 redis_timeout: float = 0.5, max_points: int = 1000, overflow=None,
                 sanitizer: LabelSanitizer | None = None):
        self.targets = targets
        self._sanitizer = sanitizer if sanitizer is not None else LabelSanitizer()
        self._max_points = max_points
        self._overflow = overflow
        self._probe_engines: dict[int, Any] = {}
        self._queue_kinds: dict[int, queue_state.QueueKind] = {}
        self._redis_client = None
        self._redis_client_lock = threading.Lock()
        self._redis_timeout = redis_timeout
        self._sampler = process_state.ProcessSampler()
        self.sources: dict[str, Source] = {
            # Read afresh at the start of every collect (see _observe_after_kick) and reused
            # for the rest of it: all pool families come from one reading, taken before the
            # other sources start (the host's count functions borrow pool connections).
            "pool": Source("pool", self._read_pool, inline=True, max_age=5.0, stale_after=5.0),
            "database": Source("database", self._read_database, budget=budget),
            "job_queue": Source("job_queue", partial(self._read_count, "sublarr_job_queue_size"), budget=budget),
            "wanted": Source("wanted", partial(self._read_count, "sublarr_wanted_queue_size"), budget=budget),
            "cache": Source("cache", self._read_cache, budget=budget),
            "redis": Source("redis", self._read_redis, budget=budget, stale_after=2.0),
            "queue": Source("queue", self._read_queue, budget=budget),
            "breakers": Source("breakers", self._read_breakers, inline=True, max_age=0.5, stale_after=0.5),
            "process": Source("process", self._sampler.read, inline=True),
            "disk": Source("disk", self._read_disks, budget=budget),
            "info": constant("info", targets.version or "unknown"),
        }
        has_engine = lambda: target(targets.engine) is not None  # noqa: E731
        self._present: dict[str, Callable[[], bool]] = {  # source -> whether it has anything to read
            "pool": has_engine, "database": has_engine, "job_queue": has_engine, "wanted": has_engine,
            "cache": lambda: target(targets.cache) is not None,
            "redis": lambda: bool(targets.redis_url),
            "queue": lambda: target(targets.queue) is not None,
            "breakers": lambda: target(targets.breakers) is not None,
            "process": lambda: True,
            "disk": lambda: bool(targets.disk_paths),
            "info": lambda: True,
        }
        self._emitters: dict[str, tuple[str, Callable[[Any], Points]]] = {
            "sublarr_db_pool_size": ("pool", lambda r: [(r.size, {})]),
            "sublarr_db_pool_checked_out": ("pool", lambda r: [(r.checked_out, {})]),
            "sublarr_db_pool_overflow": ("pool", lambda r: [(r.overflow, {})]),
            "sublarr_db_backend_info": ("database", lambda r: [(1, {"dialect": r.dialect})]),
            "sublarr_database_size_bytes": ("database", lambda r: [] if r.size_bytes is None else [(r.size_bytes, {})]),
            "sublarr_job_queue_size": ("job_queue", lambda count: [(count, {})]),
            "sublarr_wanted_queue_size": ("wanted", lambda count: [(count, {})]),
            "sublarr_cache_hits_total": ("cache", lambda r: [(r.hits, {"backend": r.backend})]),
            "sublarr_cache_misses_total": ("cache", lambda r: [(r.misses, {"backend": r.backend})]),
            "sublarr_cache_size": ("cache", lambda r: [] if r.size is None else [(r.size, {"backend": r.backend})]),
            "sublarr_redis_memory_used_bytes": ("redis", lambda r: [] if r.used_memory is None else [(r.used_memory, {})]),
            "sublarr_queue_size": ("queue", lambda r: [(r.queued, {"backend": r.backend})]),
            "sublarr_queue_active_jobs": ("queue", lambda r: [(r.active, {"backend": r.backend})]),
            "sublarr_queue_failed_jobs": ("queue", lambda r: [(r.failed, {"backend": r.backend})]),
            "sublarr_circuit_breaker_state": ("breakers", lambda rs: [(b.state, {"provider": b.provider}) for b in rs]),
            "sublarr_cpu_usage_percent": ("process", lambda r: [(r.cpu_percent, {})]),
            "sublarr_memory_usage_bytes": ("process", lambda r: [(r.rss_bytes, {})]),
            "sublarr_disk_usage_percent": ("disk", lambda r: [(d.used_percent, {"mount": d.path}) for d in r.disks]),
            "sublarr_info": ("info", lambda version: [(1, {"version": version})]),
        }
        first = True
        for name in self._emitters:
            callback = partial(self._observe, name)
            if first:  # the first callback of every collect starts all due reads at once
                callback = partial(self._observe_after_kick, name)
                first = False
            self._register(meter, catalog.family(name), callback)
        self._register(meter, catalog.family("sublarr_redis_connected"), self._observe_redis_connected)
        self._register(meter, catalog.family("sublarr_telemetry_source_up"), self._observe_source_up)
        self._register(meter, catalog.family("sublarr_telemetry_source_errors_total"), self._observe_source_errors)

    @staticmethod
    def _register(meter: Meter, family: catalog.Family, callback) -> None:
        create = meter.create_observable_counter if family.kind is Kind.COUNTER else meter.create_observable_gauge
        create(family.instrument_name, callbacks=[callback], unit=family.unit, description=family.description)

    # observation --------------------------------------------------------
    def _kick_all(self) -> None:
        for name, source in self.sources.items():
            if self._configured(name):
                source.kick()

    def _observe(self, family_name: str, options: CallbackOptions) -> list[Observation]:
        source_name, emit = self._emitters[family_name]
        if not self._configured(source_name):  # nothing to read: no thread, no series
            return []
        source = self.sources[source_name]
        reading = source.get()
        if reading is None:
            return []
        clean = self._sanitizer.clean_attributes  # state read from outside: any text at all
        try:
            points = [Observation(value, clean(family_name, attrs) if attrs else attrs)
                      for value, attrs in emit(reading)]
        except Exception as exc:  # noqa: BLE001 - a bad reading loses only this family
            source.report(f"{family_name}: {type(exc).__name__}: {exc}")
            return []
        if len(points) > self._max_points:  # gauges cannot be summed into one series: drop and count
            if self._overflow is not None:
                self._overflow.add(family_name, len(points) - self._max_points)
            source.report(f"{family_name}: {len(points)} series, above the cap of {self._max_points}")
            points = points[: self._max_points]
        return points

    def _observe_after_kick(self, family_name: str, options: CallbackOptions) -> list[Observation]:
        # The first family is the pool's (an inline read): read it before the other
        # sources start, since the host's count functions borrow pool connections.
        self.sources["pool"].invalidate()
        observed = self._observe(family_name, options)
        self._kick_all()
        return observed

    def _observe_redis_connected(self, options: CallbackOptions) -> list[Observation]:
        if not self._configured("redis"):
            return []
        source = self.sources["redis"]
        reading = source.get()
        # A stale reading still feeds the memory gauge, never the connection state.
        return [Observation(1 if reading is not None and reading.connected and source.health.up else 0)]

    def _observe_source_up(self, options: CallbackOptions) -> list[Observation]:
        return [Observation(1 if s.health.up else 0, {"source": name})
                for name, s in self.sources.items() if self._configured(name)]

    def _observe_source_errors(self, options: CallbackOptions) -> list[Observation]:
        return [Observation(s.health.errors, {"source": name})
                for name, s in self.sources.items() if self._configured(name)]

    def _configured(self, name: str) -> bool:
        """Sources without a target (no Redis URL, no queue) have no self-metrics either;
        shared state is read by the web role only (see SHARED_SOURCES)."""
        if name in SHARED_SOURCES and self.targets.role() != "web":
            return False
        return self._present[name]()

    # reading ------------------------------------------------------------
    def _read_pool(self):
        engine = target(self.targets.engine)
        if engine is None:
            return None
        from . import database as db_state  # SQLAlchemy only when there is an engine
        return db_state.read_pool(engine)

    def _read_database(self):
        engine = target(self.targets.engine)
        if engine is None:
            return None
        from . import database as db_state
        reading = db_state.read_database(engine, self._probe_for(engine))
        for problem in reading.errors:
            self.sources["database"].report(problem)
        return reading

    def _read_count(self, family: str) -> int:
        """The host's own count function when it is loaded, else the fallback SQL.

        Either way a failure raises, so the source is marked down and counted.
        """
        read = self.targets.host_count(family)
        if read is not None:
            return self.targets.host_call(read)
        engine = target(self.targets.engine)
        sql = (self.targets.count_queries or DEFAULT_COUNT_QUERIES).get(family)
        if engine is None or not sql:
            raise LookupError(f"no count for {family}: neither the host's function nor a query")
        from . import database as db_state
        return db_state.read_count(self._probe_for(engine), sql)

    def _probe_for(self, engine):
        """Telemetry's own unpooled engine beside the app's (see state.database.make_probe_engine)."""
        probe = self._probe_engines.get(id(engine))
        if probe is None:
            from . import database as db_state
            probe = self._probe_engines[id(engine)] = db_state.make_probe_engine(engine)
        return probe

    def _read_disks(self):
        reading = process_state.read_disks(self.targets.disk_paths or ())
        for problem in reading.errors:  # the other paths are still served
            self.sources["disk"].report(problem, error=True)
        return reading

    def _read_cache(self):
        cache = target(self.targets.cache)
        return None if cache is None else cache_state.read_cache(cache)

    def _read_redis(self):
        if not self.targets.redis_url:
            return None
        return redis_state.read_redis(self._redis_probe())

    def _read_queue(self):
        job_queue = target(self.targets.queue)
        if job_queue is None:
            return None
        kind = self._queue_kinds.get(id(job_queue))
        if kind is None:
            kind = self._queue_kinds[id(job_queue)] = queue_state.describe_queue(job_queue)
        if kind.backend == "rq":
            connection = target(self.targets.rq_connection) or self._rq_probe_connection()
            return queue_state.read_rq(kind.rq_name, connection)
        return queue_state.read_memory_queue(job_queue)

    def _rq_probe_connection(self):
        if not self.targets.redis_url:
            raise RuntimeError("an RQ queue needs a Redis URL for its counts (SUBLARR_REDIS_URL)")
        return self._redis_probe()

    def _redis_probe(self):
        """The one time-bounded client of the Redis and RQ queue sources, made on first use.

        Both sources are kicked at the same time, each in its own thread: the lock
        keeps them from making two clients (the one overwritten would never be closed).
        """
        with self._redis_client_lock:
            if self._redis_client is None:
                self._redis_client = redis_state.probe_client(self.targets.redis_url, self._redis_timeout)
            return self._redis_client

    def _read_breakers(self):
        mapping = target(self.targets.breakers)
        if isinstance(mapping, Missing):
            raise LookupError(mapping.reason)
        if mapping is None:
            return None
        source = self.sources["breakers"]
        return breaker_state.read_breakers(mapping, lambda problem: source.report(problem, error=True))

    def close_for_exit(self) -> None:
        """Before the final export: serve last readings, start no thread (see Source.close)."""
        for source in self.sources.values():
            source.close()

    def close(self) -> None:
        for probe in self._probe_engines.values():
            probe.dispose()
        self._probe_engines.clear()
        if self._redis_client is not None:
            self._redis_client.close()
