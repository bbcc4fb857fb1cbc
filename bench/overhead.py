"""Overhead benchmark: ``.venv/bin/python bench/run.py [--quick] [--json PATH]``.

Measures this package against a bare app and against a hand-written
``prometheus_client`` implementation of the same series, side by side in one
run. Every comparison is made of interleaved rounds (the order of the
variants rotates each round) and reported as medians of per-round values, so
a burst of noise on a shared machine hits every variant alike and no single
timing decides anything. Ratios always divide two numbers measured in the
same run.

What is measured
----------------

1. HTTP overhead per request. One Flask app shape (a route with a URL
   parameter) in three variants: ``bare``; ``ours`` (``Telemetry.init_app``);
   ``prom`` (a WSGI middleware written as a competent engineer would, with
   ``prometheus_client`` and cached label children). Requests are driven in
   process by calling ``app.wsgi_app(environ, start_response)`` with
   pre-built environs, single-threaded and from 4 threads (Sublarr runs one
   gunicorn worker with 4 threads). One round serves ``batch`` requests per
   variant, then scrapes once (a scrape every ``batch`` requests).

   ``request path``: per-request time minus bare's in the same round.
   ``amortised incl. drain``: the same with the deferred drain of the batch
   (the SDK records that the request path postponed) added to the batch
   time before dividing: the total CPU a request costs, which is the honest
   number and the headline. The drain is timed by calling
   ``HttpMetrics.drain()`` just before the scrape renders, so the scrape cost
   is shown as drain + render. ``prometheus_client`` has no deferred work; its
   amortised cost equals its request path. ``incl. scrape`` also amortises
   the render (ours renders every family of the module, prom only its three).

2. Query overhead per statement on in-memory SQLite (the same SELECT by
   primary key through SQLAlchemy Core on a held connection), ``ours``
   (:class:`~telemetry.db_metrics.QueryMetrics`) versus a
   ``before/after_cursor_execute`` listener with a ``prometheus_client``
   histogram and counter by operation; same request path / amortised split.

3. Scrape time and bytes for N label sets (distinct ``endpoint`` values) on
   the HTTP histogram + counter: ours built as the pipeline builds it (views,
   series guard, Prometheus reader, ``HttpMetrics``, ``ScrapeRenderer``) versus
   ``prometheus_client``'s own WSGI app (``make_wsgi_app``: its negotiation
   and gzip) serving the same label sets. One label set is 13 sample lines
   (9 buckets + ``+Inf`` + sum + count, and the counter). Each size is
   scraped as Prometheus scrapes: text 0.0.4, OpenMetrics, and OpenMetrics
   with gzip (the ``Accept`` and ``Accept-Encoding`` Prometheus 2.x sends),
   both ``idle`` (nothing changed since the last scrape) and ``all-changed``
   (every label set got a new observation, recorded and drained outside the
   timed scrape). ``OTLP`` is ours collecting the same data for an OTLP reader
   and encoding the export request (no network), shown beside prom's text
   scrape.

4. Memory per label set (tracemalloc: allocations retained after adding N
   label sets and one scrape, divided by N), ours versus ``prometheus_client``.

5. Whole-server throughput: the same app under gunicorn (1 worker x 4
   gthread threads), bare / ours (/ prom in the full run), driven over
   loopback by ``wrk`` (a Python load generator in a separate process when
   ``wrk`` is missing), with ``/metrics`` scraped every ``server_scrape_interval`` seconds during
   the load so the drain is paid inside the server. Also the worker's CPU
   time per request, read from ``/proc`` through psutil.

Estimators: per-round samples are on the process CPU clock (all threads),
which a shared machine disturbs less than the wall clock; the wall-clock
figures are kept as well. The machine's speed drifts by tens of percent
over seconds, so a variant's round is compared with bare's round of the same
round (tens of milliseconds apart): overhead is the median over rounds of
``variant - bare`` (``paired``), throughput the median over rounds of
``ours / bare``. ``median(variant) - median(bare)`` and
``median(ours) / median(bare)`` are shown too; they move far more from run
to run on a shared machine.

Ours keeps at most ``SUBLARR_METRICS_MAX_SERIES`` label sets per family
(default 1,000; the rest fold into one ``_overflow`` series), so the scrape
and memory sections set it to the size measured, as a user keeping that many
series would. A size where the two sides still expose different label sets
is shown as not comparable and left out of the headline.

The summary line's ratios are the worst case of what they summarise:
``http_overhead_ratio`` is the larger of the 1-thread and 4-thread
amortised ratios, ``scrape_ratio`` the largest over the comparable sizes.
``scrape_ratio`` is the largest over every format and state as well.
An overhead below ``RESOLUTION`` (noise) is clamped to it before dividing,
and marked ``~`` in the table.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import json
import math
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from telemetry import catalog

_perf = time.perf_counter

RESOLUTION = 0.05e-6
"""Overheads smaller than this (seconds) are below what the method resolves."""

JOB_ROUTE = "/api/v1/jobs/<int:job_id>"
VARIANTS = ("bare", "ours", "prom")

TARGETS = {
    "http_overhead_ratio": ("<=", 0.75),
    "db_overhead_ratio": ("<=", 1.0),
    "scrape_ratio": ("<=", 0.5),
    "throughput_ratio": (">=", 0.95),
}


@dataclass(frozen=True)
class Budget:
    """How much work each section does (tests use tiny ones)."""

    http_rounds: int = 161
    http_batch: int = 250           # requests per variant per round = requests between scrapes
    http_threads: int = 4
    db_rounds: int = 161
    db_batch: int = 500             # statements per variant per round = statements between scrapes
    scrape_sizes: tuple[int, ...] = (0, 100, 1_000, 10_000)
    scrape_rounds: int = 15
    memory_sizes: tuple[int, ...] = (1_000, 10_000)
    server_rounds: int = 40
    server_seconds: float = 1.0     # short rounds: the machine's speed drifts over seconds
    server_connections: int = 8
    server_scrape_interval: float = 0.5
    server_variants: tuple[str, ...] = VARIANTS   # prom is informational


FULL = Budget()
QUICK = Budget(http_rounds=81, http_batch=200, db_rounds=81, db_batch=400,
               scrape_sizes=(0, 100, 1_000, 10_000), scrape_rounds=9, memory_sizes=(1_000,),
               server_rounds=12, server_seconds=1.0, server_variants=("bare", "ours"))


# --- statistics ----------------------------------------------------------------

def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def quartiles(values: Sequence[float]) -> list[float]:
    if len(values) < 2:
        return [median(values)] * 3
    return [float(q) for q in statistics.quantiles(values, n=4, method="inclusive")]


def ratio(ours: float, baseline: float) -> tuple[float, bool]:
    """``ours / baseline`` with both clamped to ``RESOLUTION``; True when clamped."""
    clamped = ours < RESOLUTION or baseline < RESOLUTION
    return max(ours, RESOLUTION) / max(baseline, RESOLUTION), clamped


def _rotated(items: Sequence[str], round_no: int) -> list[str]:
    k = round_no % len(items)
    return list(items[k:]) + list(items[:k])


# --- the app in three variants ---------------------------------------------------

_METHODS = catalog.HTTP_METHODS
_OTHER_METHOD = catalog.OTHER_METHOD

def _flask_route(environ: dict) -> str:
    # The baseline gets the same route lookup as ours: the comparison is
    # about how the series are recorded, not about reading the route.
    from telemetry.http_metrics import route_of
    return route_of(environ)


class PromHttpMetrics:
    """The three HTTP series with prometheus_client, as one would write them by hand."""

    def __init__(self, registry: Any):
        from prometheus_client import Counter, Gauge, Histogram

        labels = ("method", "endpoint", "status")
        duration = catalog.family("sublarr_http_request_duration_seconds")
        total = catalog.family("sublarr_http_requests_total")
        self.duration = Histogram(duration.name, duration.description, labels,
                                  buckets=duration.buckets, registry=registry)
        self.total = Counter(total.name, total.description, labels, registry=registry)
        self.in_progress = Gauge("sublarr_http_requests_in_progress",
                                 catalog.family("sublarr_http_requests_in_progress").description,
                                 registry=registry)
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._children_lock = threading.Lock()

    def record(self, key: tuple[str, str, str], seconds: float) -> None:
        children = self._children.get(key)
        if children is None:
            with self._children_lock:
                children = self._children.get(key)
                if children is None:
                    children = (self.duration.labels(*key), self.total.labels(*key))
                    self._children[key] = children
        children[0].observe(seconds)
        children[1].inc()


class PromHttpMiddleware:
    """WSGI middleware feeding :class:`PromHttpMetrics` (the metrics path excluded)."""

    def __init__(self, wsgi_app: Callable, metrics: PromHttpMetrics, exclude: Sequence[str] = ("/metrics",)):
        self.wsgi_app = wsgi_app
        self.metrics = metrics
        self.exclude = frozenset(exclude)

    def __call__(self, environ: dict, start_response: Callable):
        if environ.get("PATH_INFO", "") in self.exclude:
            return self.wsgi_app(environ, start_response)
        seen: list[str] = []

        def recording_start_response(status, headers, exc_info=None):
            if not seen:
                seen.append(status[:3])
                seen.append(_flask_route(environ))
            return start_response(status, headers, exc_info)

        method = environ.get("REQUEST_METHOD", "")
        if method not in _METHODS:
            method = _OTHER_METHOD
        metrics = self.metrics
        metrics.in_progress.inc()
        start = _perf()
        try:
            result = self.wsgi_app(environ, recording_start_response)
        except BaseException:
            metrics.in_progress.dec()
            metrics.record((method, catalog.UNMATCHED_ENDPOINT, "500"), _perf() - start)
            raise
        seconds = _perf() - start
        metrics.in_progress.dec()
        status, endpoint = seen if seen else ("500", catalog.UNMATCHED_ENDPOINT)
        metrics.record((method, endpoint, status), seconds)
        return result


class PromQueryMetrics:
    """Query duration and count by operation with prometheus_client cursor listeners."""

    _STAMP = "_bench_prom_started"

    def __init__(self, registry: Any):
        from prometheus_client import Counter, Histogram

        duration = catalog.family("sublarr_db_query_duration_seconds")
        total = catalog.family("sublarr_db_queries_total")
        self.duration = Histogram(duration.name, duration.description, ("operation",),
                                  buckets=duration.buckets, registry=registry)
        self.total = Counter(total.name, total.description, ("operation",), registry=registry)
        self._children = {op: (self.duration.labels(op), self.total.labels(op))
                          for op in sorted(catalog.DB_OPERATIONS)}
        self._operation_of: dict[str, str] = {}

    def instrument(self, engine: Any) -> None:
        from sqlalchemy import event

        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        if context is not None:
            setattr(context, self._STAMP, _perf())

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        started = getattr(context, self._STAMP, None)
        if started is None:
            return
        seconds = _perf() - started
        operation = self._operation_of.get(statement)
        if operation is None:
            word = statement.lstrip(" \t\r\n(")[:7].lower().split(None, 1)
            operation = word[0] if word and word[0] in catalog.DB_OPERATIONS else "other"
            if len(self._operation_of) < 4096:
                self._operation_of[statement] = operation
        histogram, counter = self._children[operation]
        histogram.observe(seconds)
        counter.inc()


@dataclass
class BenchApp:
    """One variant of the benchmark app and how to scrape it."""

    variant: str
    app: Any
    telemetry: Any = None
    prom_registry: Any = None
    prom_metrics: PromHttpMetrics | None = None

    @property
    def wsgi(self) -> Callable:
        return self.app.wsgi_app

    def drain(self) -> None:
        if self.telemetry is not None:
            self.telemetry.pipeline.http.drain()

    def render(self) -> bytes:
        if self.telemetry is not None:
            return self.telemetry.render().body
        if self.prom_registry is not None:
            from prometheus_client import generate_latest
            return generate_latest(self.prom_registry)
        return b""

    def requests_counted(self) -> tuple[float | None, float | None]:
        """The request counter and histogram count for the job route (recording happened)."""
        labels = {"method": "GET", "endpoint": JOB_ROUTE, "status": "200"}
        registry = self.telemetry.registry if self.telemetry is not None else self.prom_registry
        if registry is None:
            return None, None
        return (registry.get_sample_value("sublarr_http_requests_total", labels),
                registry.get_sample_value("sublarr_http_request_duration_seconds_count", labels))

    def close(self) -> None:
        if self.telemetry is not None:
            self.telemetry.shutdown()


def build_app(variant: str) -> BenchApp:
    """The same Flask app shape, bare or instrumented one of two ways."""
    from flask import Flask, Response

    app = Flask(f"bench_{variant}", static_folder=None)

    @app.get(JOB_ROUTE)
    def job(job_id: int):
        return {"id": job_id, "status": "done", "language": "en"}

    @app.post("/api/v1/jobs")
    def create_job():
        return {"created": True}, 201

    bench = BenchApp(variant, app)
    if variant == "ours":
        from telemetry.extension import Telemetry
        from telemetry.settings import Settings

        bench.telemetry = Telemetry(settings=Settings())
        bench.telemetry.init_app(app)
    elif variant == "prom":
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        registry = CollectorRegistry(auto_describe=False)
        metrics = PromHttpMetrics(registry)
        app.add_url_rule("/metrics", "metrics", lambda: Response(generate_latest(registry),
                                                                 content_type=CONTENT_TYPE_LATEST))
        app.wsgi_app = PromHttpMiddleware(app.wsgi_app, metrics)
        bench.prom_registry, bench.prom_metrics = registry, metrics
    elif variant != "bare":
        raise ValueError(f"unknown variant {variant!r}")
    return bench


def server_app(variant: str) -> Any:
    """Gunicorn entry point: ``bench.overhead:server_app('ours')``."""
    if variant == "prom":
        import prometheus_client

        prometheus_client.disable_created_metrics()  # this process serves only the benchmark app
    return build_app(variant).app


@contextlib.contextmanager
def same_series() -> Iterator[None]:
    """prometheus_client without ``_created`` samples, which ours does not expose either.

    The switch is global and read at collect time, so it is set for the run
    and restored afterwards (the smoke test runs inside pytest).
    """
    from prometheus_client import disable_created_metrics, enable_created_metrics

    before = created_samples_enabled()
    disable_created_metrics()
    try:
        yield
    finally:
        if before:
            enable_created_metrics()


def created_samples_enabled() -> bool:
    """Whether prometheus_client writes ``_created`` samples now (read from an unregistered counter)."""
    from prometheus_client import Counter

    probe = Counter("sublarr_bench_created_probe", "", registry=None)
    return any(sample.name.endswith("_created") for family in probe.collect() for sample in family.samples)


# --- 1. HTTP overhead in process ---------------------------------------------------

def _discard(_data: bytes) -> None:
    return None


def _start_response(status, headers, exc_info=None):
    return _discard


def job_environs(count: int, distinct: int = 64) -> list[dict]:
    """``count`` pre-built GET environs for the job route (``distinct`` different ids)."""
    from werkzeug.test import EnvironBuilder

    templates = []
    for i in range(distinct):
        builder = EnvironBuilder(path=f"/api/v1/jobs/{i + 1}", method="GET",
                                 headers={"Accept": "application/json", "User-Agent": "bench"})
        templates.append(builder.get_environ())
        builder.close()
    return [templates[i % distinct] for i in range(count)]


def serve(wsgi: Callable, environs: Sequence[dict]) -> None:
    """Serve each environ (copied, as a server would build it) and consume the body."""
    start_response = _start_response
    for template in environs:
        result = wsgi(dict(template), start_response)
        for _chunk in result:
            pass
        close = getattr(result, "close", None)
        if close is not None:
            close()


def serve_threaded(wsgi: Callable, environs: Sequence[dict], threads: int) -> float:
    """Serve ``environs`` split over ``threads`` threads; wall seconds from start to last finish."""
    chunks = [environs[i::threads] for i in range(threads)]
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def work(chunk):
        barrier.wait()
        try:
            serve(wsgi, chunk)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(chunk,), daemon=True) for chunk in chunks]
    for worker in workers:
        worker.start()
    barrier.wait()
    start = _perf()
    for worker in workers:
        worker.join()
    elapsed = _perf() - start
    if errors:
        raise errors[0]
    return elapsed


class Stopwatch:
    """Wall-clock and process-CPU seconds of one timed block (all threads' CPU)."""

    __slots__ = ("wall", "cpu", "_wall0", "_cpu0")

    def __enter__(self) -> "Stopwatch":
        self._cpu0, self._wall0 = time.process_time(), _perf()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = _perf() - self._wall0
        self.cpu = time.process_time() - self._cpu0


@dataclass
class Series:
    """Per-round samples of one variant in one mode, on one clock (``cpu`` or ``wall``).

    ``request`` is seconds per request (batch time / batch size); ``drain``
    and ``render`` are seconds per batch (one scrape per batch).
    """

    request: list[float] = field(default_factory=list)
    drain: list[float] = field(default_factory=list)
    render: list[float] = field(default_factory=list)

    def amortised(self, batch: int, with_render: bool = False) -> list[float]:
        drains = self.drain or [0.0] * len(self.request)
        renders = self.render if with_render and self.render else [0.0] * len(self.request)
        return [r + (d + s) / batch for r, d, s in zip(self.request, drains, renders)]


CLOCKS = ("cpu", "wall")
KINDS = ("request", "amortised", "with_scrape")


def _overheads(series: dict[str, Series], batch: int) -> dict:
    """Overheads of ours and prom over bare, and their ratios, from per-round samples.

    ``overhead_*`` (the headline) is the median over rounds of the difference
    to bare measured in the same round; ``unpaired_*`` is median(variant) -
    median(bare).
    """
    bare_rounds = series["bare"].request
    bare = median(bare_rounds)
    out: dict[str, Any] = {"bare_us": bare * 1e6, "bare_quartiles_us": [q * 1e6 for q in quartiles(bare_rounds)]}
    for variant in ("ours", "prom"):
        s = series[variant]
        row: dict[str, Any] = {
            "per_request_us": median(s.request) * 1e6,
            "request_quartiles_us": [q * 1e6 for q in quartiles(s.request)],
            "drain_per_request_us": median(s.drain) / batch * 1e6 if s.drain else 0.0,
            "drain_per_scrape_ms": median(s.drain) * 1e3 if s.drain else 0.0,
            "render_per_scrape_ms": median(s.render) * 1e3 if s.render else 0.0,
        }
        by_kind = {"request": s.request, "amortised": s.amortised(batch),
                   "with_scrape": s.amortised(batch, with_render=True)}
        for kind, values in by_kind.items():
            row[f"overhead_{kind}_us"] = median([a - b for a, b in zip(values, bare_rounds)]) * 1e6
            row[f"unpaired_{kind}_us"] = (median(values) - bare) * 1e6
        out[variant] = row
    for kind in KINDS:
        for estimator, prefix in (("overhead", "ratio"), ("unpaired", "ratio_unpaired")):
            value, clamped = ratio(out["ours"][f"{estimator}_{kind}_us"] * 1e-6,
                                   out["prom"][f"{estimator}_{kind}_us"] * 1e-6)
            out[f"{prefix}_{kind}"], out[f"{prefix}_{kind}_clamped"] = value, clamped
    return out


def _record(samples: dict[str, dict[str, Series]], variant: str, batch: int,
            served: Stopwatch, drained: Stopwatch | None, rendered: Stopwatch | None) -> None:
    for clock in CLOCKS:
        s = samples[clock][variant]
        s.request.append(getattr(served, clock) / batch)
        if drained is not None:
            s.drain.append(getattr(drained, clock))
        if rendered is not None:
            s.render.append(getattr(rendered, clock))


def run_http(budget: Budget, log: Callable[[str], None] = lambda s: None) -> dict:
    """Section 1: per-request overhead, 1 thread and ``budget.http_threads`` threads."""
    apps = {v: build_app(v) for v in VARIANTS}
    batch = max(budget.http_threads, budget.http_batch - budget.http_batch % budget.http_threads)
    environs = job_environs(batch)
    modes = ("1 thread", f"{budget.http_threads} threads")
    samples = {mode: {clock: {v: Series() for v in VARIANTS} for clock in CLOCKS} for mode in modes}
    served_count = {v: 0 for v in VARIANTS}
    render_bytes = {}

    def one(mode: str, variant: str, record: bool) -> None:
        bench = apps[variant]
        with Stopwatch() as served:
            if mode == modes[0]:
                serve(bench.wsgi, environs)
            else:
                serve_threaded(bench.wsgi, environs, budget.http_threads)
        served_count[variant] += len(environs)
        with Stopwatch() as drained:
            bench.drain()
        with Stopwatch() as rendered:
            body = bench.render()
        render_bytes[variant] = len(body)
        if record:
            _record(samples[mode], variant, len(environs), served,
                    drained if variant == "ours" else None, rendered if variant != "bare" else None)

    try:
        for mode in modes:  # warm-up: routes, label children, SDK storage, first scrape
            for variant in VARIANTS:
                one(mode, variant, record=False)
        for round_no in range(budget.http_rounds):
            for mode in modes:
                for variant in _rotated(VARIANTS, round_no + (mode != modes[0])):
                    one(mode, variant, record=True)
            if round_no % 10 == 9:
                log(f"  http: round {round_no + 1}/{budget.http_rounds}")
        counted = {v: apps[v].requests_counted() for v in ("ours", "prom")}
        expected = {v: (float(served_count[v]),) * 2 for v in ("ours", "prom")}
        tracing_on = apps["ours"].telemetry.tracer_provider is not None
    finally:
        for bench in apps.values():
            bench.close()

    results: dict[str, Any] = {
        "batch": batch, "threads": budget.http_threads, "modes": {}, "render_bytes": render_bytes,
        "checks": {"requests_counted": counted, "requests_served": expected, "ok": counted == expected},
        # Tracing off, as measured: no tracer provider, and (read after every section, in run())
        # no instrumentation module imported, so the request path is the one an install
        # without the tracing packages runs.
        "tracing_on": tracing_on}
    for mode in modes:
        results["modes"][mode] = {
            clock: _overheads(samples[mode][clock], batch) for clock in CLOCKS}
        results["modes"][mode]["raw"] = {clock: {v: asdict(samples[mode][clock][v]) for v in VARIANTS}
                                         for clock in CLOCKS}
    results["headline"] = max(results["modes"][m]["cpu"]["ratio_amortised"] for m in modes)
    return results


# --- 2. query overhead ---------------------------------------------------------------

def _sqlite_engine():
    from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert

    engine = create_engine("sqlite://")
    meta = MetaData()
    items = Table("items", meta, Column("id", Integer, primary_key=True), Column("name", String(50)))
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(items), [{"id": i, "name": f"item {i}"} for i in range(1, 101)])
    return engine, items


def ours_pipeline(max_series: int | None = None, extra_readers: tuple = ()) -> Any:
    """A pipeline built by :func:`telemetry.pipeline.build_pipeline` itself, with no state targets.

    Going through the product's own builder keeps the benchmark on the real
    wiring (views, series guards, readers, whatever feeds the histograms).
    ``max_series`` is ``SUBLARR_METRICS_MAX_SERIES``.
    """
    from telemetry.state.callbacks import StateTargets
    from telemetry.pipeline import build_pipeline
    from telemetry.settings import Settings

    settings = Settings() if max_series is None else Settings(max_series=max_series)
    return build_pipeline(settings, lambda queries: StateTargets(), extra_readers=extra_readers)


def run_db(budget: Budget, log: Callable[[str], None] = lambda s: None) -> dict:
    """Section 2: per-statement overhead on SQLite."""
    from prometheus_client import CollectorRegistry, generate_latest
    from sqlalchemy import bindparam, select

    pipeline = ours_pipeline()
    registry, renderer, ours = pipeline.registry, pipeline.renderer, pipeline.queries
    prom_registry = CollectorRegistry(auto_describe=False)
    prom = PromQueryMetrics(prom_registry)
    engines, conns, stmts = {}, {}, {}
    for variant in VARIANTS:
        engine, items = _sqlite_engine()
        if variant == "ours":
            ours.instrument(engine)
        elif variant == "prom":
            prom.instrument(engine)
        engines[variant] = engine
        conns[variant] = engine.connect()
        stmts[variant] = select(items.c.id, items.c.name).where(items.c.id == bindparam("item_id"))
    params = [{"item_id": (i % 100) + 1} for i in range(budget.db_batch)]
    samples = {clock: {v: Series() for v in VARIANTS} for clock in CLOCKS}
    executed = {v: 0 for v in VARIANTS}

    def one(variant: str, record: bool) -> None:
        conn, stmt = conns[variant], stmts[variant]
        execute = conn.execute
        with Stopwatch() as served:
            for p in params:
                execute(stmt, p).all()
        executed[variant] += len(params)
        drained = rendered = None
        if variant == "ours":
            with Stopwatch() as drained:
                ours.queries.drain()
            with Stopwatch() as rendered:
                renderer.render()
        elif variant == "prom":
            with Stopwatch() as rendered:
                generate_latest(prom_registry)
        if record:
            _record(samples, variant, len(params), served, drained, rendered)

    try:
        for variant in VARIANTS:
            one(variant, record=False)
        for round_no in range(budget.db_rounds):
            for variant in _rotated(VARIANTS, round_no):
                one(variant, record=True)
            if round_no % 10 == 9:
                log(f"  db: round {round_no + 1}/{budget.db_rounds}")
        select = {"operation": "select"}
        ours_count = (registry.get_sample_value("sublarr_db_queries_total", select),
                      registry.get_sample_value("sublarr_db_query_duration_seconds_count", select))
        prom_count = (prom_registry.get_sample_value("sublarr_db_queries_total", select),
                      prom_registry.get_sample_value("sublarr_db_query_duration_seconds_count", select))
    finally:
        for variant in VARIANTS:
            conns[variant].close()
            engines[variant].dispose()
        pipeline.shutdown()

    batch = len(params)
    out: dict[str, Any] = {clock: _overheads(samples[clock], batch) for clock in CLOCKS}
    out.update({"batch": batch, "raw": {clock: {v: asdict(samples[clock][v]) for v in VARIANTS} for clock in CLOCKS},
                "checks": {"ours_counted": ours_count, "prom_counted": prom_count, "executed": executed,
                           "ok": ours_count == prom_count == (float(executed["ours"]),) * 2}})
    out["headline"] = out["cpu"]["ratio_amortised"]
    return out


# --- 3. scrape time and bytes, 4. memory per series -------------------------------------

def _endpoints(n: int) -> list[str]:
    return [f"/api/v1/generated/{i:05d}/<int:item_id>" for i in range(n)]


PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;"
                     "q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2")
"""The ``Accept`` header of Prometheus 2.x scrapes (with ``Accept-Encoding: gzip``)."""

SCRAPE_FORMATS = {  # name -> (Accept, Accept-Encoding)
    "text": ("text/plain;version=0.0.4", None),
    "openmetrics": (PROMETHEUS_ACCEPT, None),
    "openmetrics+gzip": (PROMETHEUS_ACCEPT, "gzip"),
}
SCRAPE_STATES = ("idle", "all-changed")


class _OursSeries:
    """The HTTP families of a pipeline built by the product's own builder.

    ``max_series`` (``SUBLARR_METRICS_MAX_SERIES``, default 1,000) is raised to
    the size measured, as a user keeping that many series would set it;
    otherwise the label sets beyond it are folded into one ``_overflow`` series.
    The scrape also carries the pipeline's few fixed series (process, info,
    self-metrics); the ``0 label sets`` size shows what they cost.
    ``otlp``: also attach an in-memory OTLP reader (its collect + encode is timed).
    """

    def __init__(self, max_series: int | None = None, otlp: bool = False):
        readers = ()
        if otlp:
            from opentelemetry.sdk.metrics.export import InMemoryMetricReader

            from telemetry.histograms import InjectingReaderMixin

            class OtlpReader(InjectingReaderMixin, InMemoryMetricReader):
                pass
            readers = (OtlpReader(),)
        self.otlp_reader = readers[0] if readers else None
        self.pipeline = ours_pipeline(max_series, extra_readers=readers)
        self.http = self.pipeline.http

    def add(self, endpoints: Sequence[str]) -> None:
        note = self.http.requests.note
        for endpoint in endpoints:
            note(("GET", endpoint, "200"), 0.042)
        self.http.drain()

    def render(self, fmt: str = "text") -> bytes:
        accept, encoding = SCRAPE_FORMATS[fmt]
        return self.pipeline.renderer.render(accept, encoding).body

    def otlp_export(self) -> bytes:
        """What one OTLP export of this data sends (collect, then the OTLP protobuf request)."""
        from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics

        return encode_metrics(self.otlp_reader.get_metrics_data()).SerializeToString()

    def close(self) -> None:
        self.pipeline.shutdown()


def _ours_series_for(n: int, otlp: bool = False) -> Callable[[], _OursSeries]:
    from telemetry.settings import Settings

    return lambda: _OursSeries(max_series=max(Settings().max_series, n), otlp=otlp)


class _PromSeries:
    """The hand-written prometheus_client version, served by prometheus_client's own WSGI app."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, make_wsgi_app

        self.registry = CollectorRegistry(auto_describe=False)
        self.metrics = PromHttpMetrics(self.registry)
        self.app = make_wsgi_app(self.registry)

    def add(self, endpoints: Sequence[str]) -> None:
        record = self.metrics.record
        for endpoint in endpoints:
            record(("GET", endpoint, "200"), 0.042)

    def render(self, fmt: str = "text") -> bytes:
        accept, encoding = SCRAPE_FORMATS[fmt]
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": "", "HTTP_ACCEPT": accept,
                   "HTTP_ACCEPT_ENCODING": encoding or ""}
        return b"".join(self.app(environ, _start_response))

    def close(self) -> None:
        pass


def _sample_lines(body: bytes) -> int:
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


def _label_sets(body: bytes) -> int:
    """Label sets of the HTTP request counter in an exposition."""
    return sum(1 for line in body.splitlines() if line.startswith(b"sublarr_http_requests_total{"))


def _histogram_sets(body: bytes) -> int:
    """Label sets of the HTTP duration histogram in an exposition."""
    return sum(1 for line in body.splitlines() if line.startswith(b"sublarr_http_request_duration_seconds_count{"))


def run_scrape(budget: Budget, log: Callable[[str], None] = lambda s: None) -> dict:
    """Section 3: scrape time and bytes by number of label sets, format and state, and the OTLP export."""
    out: dict[str, Any] = {"sizes": {}, "formats": list(SCRAPE_FORMATS), "states": list(SCRAPE_STATES)}
    cases = [(fmt, state) for state in SCRAPE_STATES for fmt in SCRAPE_FORMATS]
    for n in budget.scrape_sizes:
        endpoints = _endpoints(n)
        built: dict[str, Any] = {"ours": _ours_series_for(n, otlp=True)(), "prom": _PromSeries()}
        times = {f"{fmt}/{state}": {c: {v: [] for v in built} for c in CLOCKS} for fmt, state in cases}
        otlp_times: dict[str, list[float]] = {"ours": [], "prom_text": []}
        try:
            for series in built.values():
                series.add(endpoints)
            bodies = {fmt: {v: s.render(fmt) for v, s in built.items()} for fmt in SCRAPE_FORMATS}  # warm-up
            otlp_bytes = len(built["ours"].otlp_export())
            rounds = budget.scrape_rounds if n < 10_000 else max(3, budget.scrape_rounds // 3)
            for round_no in range(rounds):
                for fmt, state in cases:
                    for variant in _rotated(list(built), round_no):
                        if state == "all-changed":
                            built[variant].add(endpoints)  # not timed: recorded (and drained) before the scrape
                        with Stopwatch() as watch:
                            built[variant].render(fmt)
                        for clock in CLOCKS:
                            times[f"{fmt}/{state}"][clock][variant].append(getattr(watch, clock))
                for variant in _rotated(["ours", "prom_text"], round_no):
                    with Stopwatch() as watch:
                        if variant == "ours":
                            built["ours"].otlp_export()
                        else:
                            built["prom"].render("text")
                    otlp_times[variant].append(watch.cpu)
        finally:
            for series in built.values():
                series.close()
        text = bodies["text"]
        comparable = (_label_sets(text["ours"]) == _label_sets(text["prom"]) == n
                      and _histogram_sets(text["ours"]) == _histogram_sets(text["prom"]) == n)
        size: dict[str, Any] = {
            "comparable": comparable,
            "ours_bytes": len(text["ours"]), "prom_bytes": len(text["prom"]),
            "bytes_ratio": len(text["ours"]) / max(len(text["prom"]), 1),
            "ours_sample_lines": _sample_lines(text["ours"]), "prom_sample_lines": _sample_lines(text["prom"]),
            "ours_label_sets": _label_sets(text["ours"]), "prom_label_sets": _label_sets(text["prom"]),
            "bytes": {fmt: {v: len(body) for v, body in b.items()} for fmt, b in bodies.items()},
            "cases": {},
            "otlp": {"ours_ms": median(otlp_times["ours"]) * 1e3, "prom_text_ms": median(otlp_times["prom_text"]) * 1e3,
                     "ratio": median(otlp_times["ours"]) / max(median(otlp_times["prom_text"]), RESOLUTION),
                     "request_bytes": otlp_bytes},
        }
        for case, by_clock in times.items():
            cpu = by_clock["cpu"]
            value, clamped = ratio(median(cpu["ours"]), median(cpu["prom"]))
            size["cases"][case] = {
                "ours_ms": median(cpu["ours"]) * 1e3, "prom_ms": median(cpu["prom"]) * 1e3,
                "ours_wall_ms": median(by_clock["wall"]["ours"]) * 1e3,
                "prom_wall_ms": median(by_clock["wall"]["prom"]) * 1e3,
                "ratio": value, "ratio_clamped": clamped,
                "raw_ms": {c: {v: [t * 1e3 for t in ts] for v, ts in by.items()} for c, by in by_clock.items()},
            }
        worst = max(size["cases"], key=lambda case: size["cases"][case]["ratio"])
        size.update(worst_case=worst, ratio=size["cases"][worst]["ratio"],
                    ours_ms=size["cases"]["text/idle"]["ours_ms"], prom_ms=size["cases"]["text/idle"]["prom_ms"])
        out["sizes"][str(n)] = size
        log(f"  scrape: {n} label sets done")
    comparable = [s["ratio"] for n, s in out["sizes"].items() if s["comparable"] and int(n) > 0]
    out["headline"] = max(comparable) if comparable else float("nan")
    return out


def _retained_bytes(make: Callable[[], Any], endpoints: Sequence[str]) -> tuple[int, int, int]:
    """Bytes retained by an empty instance, bytes added by ``endpoints`` and one scrape, label sets scraped."""
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        series = make()
        series.render()
        gc.collect()
        empty = tracemalloc.get_traced_memory()[0]
        series.add(endpoints)
        body = series.render()
        label_sets = min(_label_sets(body), _histogram_sets(body))
        del body
        gc.collect()
        full = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    series.close()
    return empty - start, full - empty, label_sets


def run_memory(budget: Budget, log: Callable[[str], None] = lambda s: None) -> dict:
    """Section 4: retained memory per label set (tracemalloc)."""
    out: dict[str, Any] = {"sizes": {}}
    for n in budget.memory_sizes:
        endpoints = _endpoints(n)  # the label strings exist before tracing: neither side pays them
        row: dict[str, Any] = {}
        for variant, make in (("ours", _ours_series_for(n)), ("prom", _PromSeries)):
            base, added, label_sets = _retained_bytes(make, endpoints)  # both families counted below
            row[f"{variant}_base_bytes"] = base
            row[f"{variant}_bytes_per_series"] = added / n
            row[f"{variant}_label_sets"] = label_sets
        row["comparable"] = row["ours_label_sets"] == row["prom_label_sets"] == n
        row["ratio"] = row["ours_bytes_per_series"] / max(row["prom_bytes_per_series"], 1e-9)
        out["sizes"][str(n)] = row
        log(f"  memory: {n} label sets done")
    return out


# --- 5. whole server -------------------------------------------------------------------

def _checkout_dir() -> str:
    return str(Path(__file__).resolve().parent.parent)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, timeout: float = 5.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


class GunicornServer:
    """One gunicorn master (1 worker x threads gthread) serving one variant."""

    def __init__(self, variant: str, threads: int = 4):
        self.variant = variant
        self.port = _free_port()
        env = dict(os.environ)
        env["PYTHONPATH"] = _checkout_dir() + os.pathsep + env.get("PYTHONPATH", "")
        self.errors = tempfile.TemporaryFile()
        cmd = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}",
               "--workers", "1", "--threads", str(threads), "--worker-class", "gthread",
               "--log-level", "warning", f"bench.overhead:server_app({variant!r})"]
        self.process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=self.errors)
        self._worker = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.errors.seek(0)
                err = self.errors.read().decode(errors="replace")
                raise RuntimeError(f"gunicorn ({self.variant}) exited: {err[-2000:]}")
            try:
                if _get(self.base + "/api/v1/jobs/1", timeout=1.0) == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn ({self.variant}) did not answer within {timeout} s")

    def worker_cpu(self) -> float | None:
        """CPU seconds (user + system) used so far by the worker process."""
        try:
            import psutil
            if self._worker is None:
                children = psutil.Process(self.process.pid).children()
                if len(children) != 1:
                    return None
                self._worker = children[0]
            times = self._worker.cpu_times()
            return times.user + times.system
        except Exception:  # noqa: BLE001 - CPU is informational
            return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.errors.close()


def _run_wrk(url: str, connections: int, seconds: float) -> dict:
    cmd = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{max(1, round(seconds))}s", url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    text = done.stdout
    rps = re.search(r"Requests/sec:\s*([0-9.]+)", text)
    total = re.search(r"(\d+) requests in ([0-9.]+)(m?s)", text)
    bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    errors = re.search(r"Socket errors:.*", text)
    if done.returncode != 0 or rps is None or total is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {text}{done.stderr}")
    return {"rps": float(rps.group(1)), "requests": int(total.group(1)),
            "non_2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": errors.group(0) if errors else None}


def loadgen_main(argv: Sequence[str] | None = None) -> int:
    """A keep-alive HTTP load generator for when wrk is missing (run in its own process)."""
    import http.client

    parser = argparse.ArgumentParser(prog="bench-loadgen")
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("path")
    parser.add_argument("connections", type=int)
    parser.add_argument("seconds", type=float)
    args = parser.parse_args(argv)
    counts = [0] * args.connections
    failures = [0] * args.connections
    stop_at = time.monotonic() + args.seconds

    def drive(slot: int) -> None:
        conn = http.client.HTTPConnection(args.host, args.port, timeout=10)
        while time.monotonic() < stop_at:
            try:
                conn.request("GET", args.path)
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    counts[slot] += 1
                else:
                    failures[slot] += 1
            except OSError:
                failures[slot] += 1
                conn.close()
                conn = http.client.HTTPConnection(args.host, args.port, timeout=10)
        conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=drive, args=(i,)) for i in range(args.connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    print(json.dumps({"requests": sum(counts), "seconds": elapsed, "failures": sum(failures)}))
    return 0


def _run_python_load(host: str, port: int, path: str, connections: int, seconds: float) -> dict:
    code = "import sys; from bench.overhead import loadgen_main; sys.exit(loadgen_main(sys.argv[1:]))"
    env = dict(os.environ)
    env["PYTHONPATH"] = _checkout_dir() + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-c", code, host, str(port), path, str(connections), str(seconds)],
                          capture_output=True, text=True, timeout=seconds + 60, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"python load generator failed: {done.stderr[-2000:]}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return {"rps": data["requests"] / data["seconds"], "requests": data["requests"],
            "non_2xx": data["failures"], "socket_errors": None}


class _Scraper:
    """GETs ``/metrics`` every ``interval`` seconds while the load runs."""

    def __init__(self, url: str, interval: float):
        self.url, self.interval = url, interval
        self.stop_event = threading.Event()
        self.scrapes = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop_event.wait(self.interval):
            try:
                _get(self.url, timeout=10)
                self.scrapes += 1
            except OSError:
                pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join(timeout=15)


def run_server(budget: Budget, load_generator: str = "auto",
               log: Callable[[str], None] = lambda s: None) -> dict:
    """Section 5: requests/s of the app under gunicorn, bare vs instrumented."""
    tool = load_generator
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "python"
    path = "/api/v1/jobs/42"

    def load(server: GunicornServer, seconds: float) -> dict:
        if tool == "wrk":
            return _run_wrk(server.base + path, budget.server_connections, seconds)
        return _run_python_load("127.0.0.1", server.port, path, budget.server_connections, seconds)

    variants = tuple(budget.server_variants)
    servers: dict[str, GunicornServer] = {}
    rounds: dict[str, list[dict]] = {v: [] for v in variants}
    try:
        for variant in variants:
            servers[variant] = GunicornServer(variant)
        for server in servers.values():
            server.wait_ready()
        for server in servers.values():  # warm-up
            load(server, 1.0)
        for round_no in range(budget.server_rounds):
            for variant in _rotated(variants, round_no):
                server = servers[variant]
                cpu0 = server.worker_cpu()
                with _Scraper(server.base + "/metrics", budget.server_scrape_interval) as scraper:
                    result = load(server, budget.server_seconds)
                cpu1 = server.worker_cpu()
                result["scrapes"] = scraper.scrapes
                if cpu0 is not None and cpu1 is not None and result["requests"]:
                    result["worker_cpu_us_per_request"] = (cpu1 - cpu0) / result["requests"] * 1e6
                rounds[variant].append(result)
            if round_no % 5 == 4 or round_no == budget.server_rounds - 1:
                log(f"  server: round {round_no + 1}/{budget.server_rounds}")
        counted = _scraped_count(servers["ours"].base + "/metrics") if "ours" in servers else None
    finally:
        for server in servers.values():
            server.stop()

    out: dict[str, Any] = {"load_generator": tool, "connections": budget.server_connections,
                           "seconds_per_round": budget.server_seconds, "variants": list(variants), "raw": rounds,
                           "checks": {"ours_requests_counted": counted,
                                      "errors": {v: sum(r["non_2xx"] for r in rs) for v, rs in rounds.items()}}}
    bare_rps = [r["rps"] for r in rounds["bare"]]
    for variant in variants:
        cpu = [r["worker_cpu_us_per_request"] for r in rounds[variant] if "worker_cpu_us_per_request" in r]
        rps = [r["rps"] for r in rounds[variant]]
        out[variant] = {"rps": median(rps), "rps_quartiles": quartiles(rps),
                        "worker_cpu_us_per_request": median(cpu) if cpu else float("nan"),
                        # cross-check: the ratio to bare within each round, then the median
                        "paired_ratio": median([a / b for a, b in zip(rps, bare_rps)])}
    out["ratio"] = out["ours"]["paired_ratio"]
    out["ratio_of_medians"] = out["ours"]["rps"] / out["bare"]["rps"]
    if "prom" in out:
        out["prom_ratio"] = out["prom"]["paired_ratio"]
    out["headline"] = out["ratio"]
    return out


def _scraped_count(url: str) -> float | None:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return None
    total = 0.0
    for line in text.splitlines():
        if line.startswith("sublarr_http_requests_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


# --- report ------------------------------------------------------------------------------

def _met(value: float, target: tuple[str, float]) -> str:
    if not math.isfinite(value):
        return "n/a"
    op, bound = target
    ok = value <= bound if op == "<=" else value >= bound
    return "yes" if ok else "NO"


def _fmt_ratio(value: float, clamped: bool = False) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{'~' if clamped else ''}{value:.2f}x"


def table(results: dict) -> str:
    rows: list[tuple[str, str, str, str, str, str]] = []
    http_target = TARGETS["http_overhead_ratio"]
    labels = {"request": "request path", "amortised": "amortised incl. drain", "with_scrape": "incl. drain+render"}

    def overhead_rows(title: str, m: dict, unit: str, target: tuple[str, float]) -> None:
        cpu, wall = m["cpu"], m["wall"]
        for kind in KINDS:
            headline = kind == "amortised"
            rows.append((
                f"{title}, {labels[kind]}",
                f"{cpu['ours'][f'overhead_{kind}_us']:+.2f} us",
                f"prom {cpu['prom'][f'overhead_{kind}_us']:+.2f} us (bare {cpu['bare_us']:.1f} us/{unit})",
                _fmt_ratio(cpu[f"ratio_{kind}"], cpu[f"ratio_{kind}_clamped"]),
                f"{target[0]} {target[1]}" if headline else "(info)",
                _met(cpu[f"ratio_{kind}"], target) if headline else ""))
        rows.append((
            f"  same, median - median(bare)",
            f"{cpu['ours']['unpaired_amortised_us']:+.2f} us",
            f"prom {cpu['prom']['unpaired_amortised_us']:+.2f} us",
            _fmt_ratio(cpu["ratio_unpaired_amortised"], cpu["ratio_unpaired_amortised_clamped"]), "(info)", ""))
        rows.append((
            f"  same, wall clock",
            f"{wall['ours']['overhead_amortised_us']:+.2f} us",
            f"prom {wall['prom']['overhead_amortised_us']:+.2f} us (bare {wall['bare_us']:.1f} us/{unit})",
            _fmt_ratio(wall["ratio_amortised"], wall["ratio_amortised_clamped"]), "(info)", ""))

    def scrape_cost_row(title: str, cpu: dict) -> None:
        rows.append((title,
                     f"drain {cpu['ours']['drain_per_scrape_ms']:.2f} + render {cpu['ours']['render_per_scrape_ms']:.2f} ms",
                     f"prom render {cpu['prom']['render_per_scrape_ms']:.2f} ms", "", "(info)", ""))

    http = results.get("http")
    if http:
        for mode, m in http["modes"].items():
            overhead_rows(f"HTTP overhead/req, {mode}", m, "req", TARGETS["http_overhead_ratio"])
            scrape_cost_row(f"  HTTP scrape every {http['batch']} req, {mode}", m["cpu"])
    db = results.get("db")
    if db:
        overhead_rows("DB overhead/query (SQLite)", db, "query", TARGETS["db_overhead_ratio"])
        scrape_cost_row(f"  DB scrape every {db['batch']} queries", db["cpu"])
    scrape = results.get("scrape")
    if scrape:
        target = TARGETS["scrape_ratio"]
        for n, s in scrape["sizes"].items():
            if int(n) == 0:
                case = s["cases"]["text/idle"]
                rows.append((f"scrape CPU time, no label sets (fixed part)", f"{case['ours_ms']:.2f} ms "
                             f"({s['ours_sample_lines']} samples)", f"prom {case['prom_ms']:.2f} ms "
                             f"({s['prom_sample_lines']} samples)", _fmt_ratio(case["ratio"]), "(info)", ""))
                continue
            for name, case in s["cases"].items():
                title = f"scrape CPU, {int(n):,} label sets ({s['prom_sample_lines']:,} samples), {name}"
                if s["comparable"]:
                    headline = name == s["worst_case"]
                    rows.append((title, f"{case['ours_ms']:.2f} ms", f"prom {case['prom_ms']:.2f} ms",
                                 _fmt_ratio(case["ratio"], case["ratio_clamped"]),
                                 f"{target[0]} {target[1]}" + ("" if headline else " (each)"), _met(case["ratio"], target)))
                else:
                    rows.append((title, f"{case['ours_ms']:.2f} ms ({s['ours_label_sets']:,} sets)",
                                 f"prom {case['prom_ms']:.2f} ms", "n/c", "(not the same series)", ""))
            otlp = s["otlp"]
            rows.append((f"OTLP collect+encode, {int(n):,} label sets", f"{otlp['ours_ms']:.2f} ms "
                         f"({otlp['request_bytes']:,} B)", f"prom text scrape {otlp['prom_text_ms']:.2f} ms",
                         _fmt_ratio(otlp["ratio"]), "(info)", ""))
            rows.append((f"scrape bytes, {int(n):,} label sets, text", f"{s['ours_bytes']:,} B",
                         f"prom {s['prom_bytes']:,} B", _fmt_ratio(s["bytes_ratio"]), "(info)", ""))
    memory = results.get("memory")
    if memory:
        for n, m in memory["sizes"].items():
            rows.append((f"memory per label set, {int(n):,} sets", f"{m['ours_bytes_per_series']:,.0f} B",
                         f"prom {m['prom_bytes_per_series']:,.0f} B",
                         _fmt_ratio(m["ratio"]) if m["comparable"] else "n/c", "(info)", ""))
    server = results.get("server")
    if server:
        target = TARGETS["throughput_ratio"]
        bare = server["bare"]
        rows.append(("throughput, gunicorn 1x4 gthread", f"{server['ours']['rps']:,.0f} req/s",
                     f"bare {bare['rps']:,.0f} req/s", _fmt_ratio(server["ratio"]),
                     f"{target[0]} {target[1]}", _met(server["ratio"], target)))
        rows.append(("  same, median / median(bare)", "", "", _fmt_ratio(server["ratio_of_medians"]), "(info)", ""))
        if "prom" in server:
            rows.append(("throughput, prom_client version", f"{server['prom']['rps']:,.0f} req/s",
                         f"bare {bare['rps']:,.0f} req/s", _fmt_ratio(server["prom_ratio"]), "(info)", ""))
        cpu_ours, cpu_bare = server["ours"]["worker_cpu_us_per_request"], bare["worker_cpu_us_per_request"]
        baseline = f"bare {cpu_bare:.1f} us"
        if "prom" in server:
            baseline += f" / prom {server['prom']['worker_cpu_us_per_request']:.1f} us"
        rows.append(("server worker CPU/request", f"{cpu_ours:.1f} us", baseline,
                     _fmt_ratio(cpu_ours / cpu_bare if cpu_bare else float("nan")), "(info)", ""))
    header = ("measurement", "ours", "baseline(s)", "ratio", "target", "met?")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(tuple("-" * w for w in widths)), *map(line, rows)])


def headlines(results: dict) -> dict[str, float]:
    nan = float("nan")
    return {
        "http_overhead_ratio": results.get("http", {}).get("headline", nan),
        "db_overhead_ratio": results.get("db", {}).get("headline", nan),
        "scrape_ratio": results.get("scrape", {}).get("headline", nan),
        "throughput_ratio": results.get("server", {}).get("headline", nan),
    }


def summary_line(results: dict) -> str:
    return " ".join(f"{name}={value:.4g}" for name, value in headlines(results).items())


def environment() -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "switch_interval": sys.getswitchinterval()}
    try:
        info["loadavg_at_start"] = os.getloadavg()
    except OSError:
        pass
    import telemetry

    package = Path(telemetry.__file__).resolve().parent
    digest = hashlib.sha256()
    for source in sorted(package.rglob("*.py")):
        digest.update(str(source.relative_to(package)).encode() + b"\0" + source.read_bytes())
    info["telemetry_sources_sha256"] = digest.hexdigest()[:16]  # which code was measured
    try:
        head = subprocess.run(["git", "-C", str(package), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(package), "status", "--porcelain", "--", "."],
                               capture_output=True, text=True, timeout=10)
        if head.returncode == 0:
            info["git_head"] = head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        from importlib.metadata import version
        for dist in ("flask", "werkzeug", "sqlalchemy", "prometheus-client", "opentelemetry-sdk", "gunicorn"):
            info[dist] = version(dist)
    except Exception:  # noqa: BLE001 - informational
        pass
    return info


def run(budget: Budget, *, server: bool = True, load_generator: str = "auto",
        log: Callable[[str], None] = lambda s: None) -> dict:
    """Every section, in order; returns the raw results."""
    results: dict[str, Any] = {"budget": asdict(budget), "environment": environment(), "section_seconds": {}}
    started = time.monotonic()
    sections: list[tuple[str, str, Callable[[], dict]]] = [
        ("http", "HTTP overhead (in process)", lambda: run_http(budget, log)),
        ("db", "query overhead (SQLite)", lambda: run_db(budget, log)),
        ("scrape", "scrape time and bytes", lambda: run_scrape(budget, log)),
        ("memory", "memory per series", lambda: run_memory(budget, log)),
    ]
    if server:
        sections.append(("server", "whole-server throughput (gunicorn)",
                         lambda: run_server(budget, load_generator, log)))
    with same_series():
        for key, title, section in sections:
            log(f"{title}...")
            began = time.monotonic()
            results[key] = section()
            results["section_seconds"][key] = round(time.monotonic() - began, 1)
    results["instrumentation_modules"] = sorted(m for m in sys.modules if m.startswith("opentelemetry.instrumentation"))
    results["elapsed_seconds"] = time.monotonic() - started
    results["headlines"] = headlines(results)
    return results


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Overhead of sublarr telemetry versus a bare app and a prometheus_client version.")
    parser.add_argument("--quick", action="store_true", help="a reduced run (under two minutes)")
    parser.add_argument("--json", metavar="PATH", help="also write the raw numbers to PATH")
    parser.add_argument("--skip-server", action="store_true",
                        help="skip the gunicorn throughput section (its ratio is then nan)")
    parser.add_argument("--load-generator", choices=("auto", "wrk", "python"), default="auto",
                        help="wrk when installed (auto), else a Python load generator process")
    args = parser.parse_args(argv)
    budget = QUICK if args.quick else FULL

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    results = run(budget, server=not args.skip_server, load_generator=args.load_generator, log=log)
    notes = []
    if not results["http"]["checks"]["ok"]:
        notes.append(f"WARNING: HTTP request counts disagree: {results['http']['checks']}")
    if not results["db"]["checks"]["ok"]:
        notes.append(f"WARNING: query counts disagree: {results['db']['checks']}")
    if args.json:
        Path(args.json).write_text(json.dumps(_json_safe(results), indent=2, sort_keys=True) + "\n")
    env = results["environment"]
    print(f"bench/run.py ({'quick' if args.quick else 'full'}), python {env['python']}, "
          f"{env['cpus']} CPUs, load average at start {tuple(round(x, 2) for x in env.get('loadavg_at_start', ()))}, "
          f"{results['elapsed_seconds']:.0f} s; code {env.get('git_head', '?')} "
          f"(telemetry sources {env['telemetry_sources_sha256']})")
    print(f"HTTP: {results['http']['batch']} requests per variant per round, a scrape after each, "
          f"{budget.http_rounds} interleaved rounds. DB: {results['db']['batch']} statements per round, "
          f"{budget.db_rounds} rounds. Overheads: median over rounds of (variant - bare in the same round), "
          f"process CPU time.")
    tracing_off = not results["http"]["tracing_on"] and not results["instrumentation_modules"]
    print("Tracing: " + ("off, and no opentelemetry.instrumentation module was imported: the request path "
                         "measured is the one without the tracing packages installed." if tracing_off else
                         f"NOT off (tracer provider: {results['http']['tracing_on']}, instrumentation modules "
                         f"imported: {results['instrumentation_modules']})."))
    if "server" in results:
        s = results["server"]
        print(f"Server: {s['load_generator']}, {s['connections']} connections, {budget.server_rounds} rounds x "
              f"{budget.server_seconds:g} s per variant, /metrics scraped every {budget.server_scrape_interval:g} s; "
              f"ratio: median over rounds of ours/bare.")
    print()
    print(table(results))
    for note in notes:
        print(note)
    print()
    print(summary_line(results))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
