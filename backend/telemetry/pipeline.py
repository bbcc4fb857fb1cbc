"""Everything that needs the OpenTelemetry SDK for one process, built together.

A :class:`Pipeline` owns the meter provider, its readers, and the recorders
that feed it (HTTP, queries, domain events, jobs, the callback layer). The
Flask extension and the RQ worker integration both build one; a forked child
builds its own (new ``service.instance.id``) or captures for its parent.
"""
from __future__ import annotations

import atexit
import json
import os
import threading
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from prometheus_client import CollectorRegistry

from . import catalog, events
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from .state.callbacks import CallbackLayer
from .state.targets import StateTargets, target
from .cardinality import OverflowCounter, SeriesGuard
from .db_metrics import QueryMetrics
from .direct import DirectSource
from .exposition import ScrapeRenderer
from .fast_exposition import CachedExposition
from .otlp_reader import ProcessLocalReader, build_otlp_reader
from .http_metrics import HttpMetrics
from .jobs import JobMetrics
from .labels import LabelSanitizer
from .native_histograms import build_produced
from .meter_provider import INSTRUMENTATION_SCOPES, build_meter_provider, build_prometheus_reader, build_resource
from .settings import Settings
from .subtitles import SubtitleMetrics


class CaptureSink:
    """Collects domain events in a work-horse so its worker can replay them."""

    def __init__(self):
        self.events: list[list] = []

    def translation_finished(self, status, fmt, duration):
        self.events.append(["translation_finished", status, fmt, duration])

    def provider_searched(self, provider, status):
        self.events.append(["provider_searched", provider, status])

    def provider_downloaded(self, provider, fmt):
        self.events.append(["provider_downloaded", provider, fmt])


@dataclass
class Pipeline:
    settings: Settings
    instance_id: str
    meter_provider: Any
    registry: CollectorRegistry
    renderer: ScrapeRenderer
    http: HttpMetrics
    subtitles: SubtitleMetrics
    queries: QueryMetrics
    jobs: JobMetrics
    callbacks: CallbackLayer
    owner_pid: int
    capture: CaptureSink | None = None
    resource: Any = None
    tracer_provider: Any = None  # only when built with tracing=True (telemetry.tracing)
    direct: DirectSource | None = None  # this pipeline's families in ``registry``

    # capture and replay (RQ work-horses) --------------------------------
    def begin_capture(self) -> None:
        """In a forked child: record nothing into the SDK, keep raw records."""
        self.queries.queries.discard_pending()  # the parent's notes are the parent's
        self.http.requests.discard_pending()
        self.jobs.jobs.discard_pending()
        self.capture = CaptureSink()
        events.install(self.capture)

    def end_capture(self, path: str, extra: dict | None = None) -> None:
        """Write what the child recorded (plus ``extra``) to ``path`` (atomically) for the parent."""
        if self.capture is None:
            return
        data = {**(extra or {}), "events": self.capture.events,
                "queries": [[key[0], value] for key, value in self.queries.queries.take_pending()]}
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(tmp, path)

    def replay(self, data: dict) -> None:
        """Record a child's captured events and queries as this process's own."""
        sink = self.subtitles
        for name, *args in data.get("events", ()):
            if name in ("translation_finished", "provider_searched", "provider_downloaded"):
                getattr(sink, name)(*args)
        for operation, seconds in data.get("queries", ()):
            self.queries.queries.note((str(operation),), float(seconds))

    # lifecycle ----------------------------------------------------------
    def shutdown(self, timeout_seconds: float = 30.0) -> None:
        """Final export, then stop. Idempotent; a forked child never shuts its parent's down."""
        with _SHUTDOWN_LOCK:
            if getattr(self, "_shut", False):
                return
            self._shut = True
        if events.active_sink() in (self.subtitles, self.capture):
            events.install(None)
        self.callbacks.close_for_exit()  # the final collect serves last readings, starts no thread
        self.queries.uninstrument()
        try:
            if self.tracer_provider is not None:
                self.tracer_provider.shutdown()  # flushes spans
            self.meter_provider.shutdown(timeout_millis=timeout_seconds * 1000)
        finally:
            self.callbacks.close()
            self.leave_registry()

    def leave_registry(self) -> None:
        """Take this pipeline's families out of ``registry`` (a registry passed in outlives it)."""
        direct, self.direct = self.direct, None
        if direct is not None:
            try:
                self.registry.unregister(direct)
            except KeyError:  # already gone
                pass

    def exit(self) -> None:
        """At interpreter exit: the final flush, bounded to about a second."""
        if os.getpid() != self.owner_pid:  # handlers are inherited across fork
            return
        try:
            self.shutdown(timeout_seconds=EXIT_FLUSH_SECONDS)
        except Exception as exc:  # noqa: BLE001 - never a traceback at exit
            import logging
            logging.getLogger(__name__).warning("sublarr telemetry: final export failed: %s", exc)


EXIT_FLUSH_SECONDS = 1.0
_SHUTDOWN_LOCK = threading.Lock()


def _exit_handler(pipeline: "Pipeline") -> None:
    """Shut ``pipeline`` down at interpreter exit without keeping it alive."""
    ref = weakref.ref(pipeline)

    def on_exit():
        instance = ref()
        if instance is not None:
            instance.exit()
    atexit.register(on_exit)


def per_process_identity(resource: Any, given: str | None) -> Any:
    """``resource`` with a ``service.instance.id`` no other process shares.

    Why: over OTLP, two processes pushing cumulative series under one identity
    overwrite each other (a gunicorn ``-w 2`` kept 1,461 of 6,000 requests,
    with counter resets). An id ``given`` from outside (``OTEL_RESOURCE_ATTRIBUTES``,
    as the OpenTelemetry Operator injects one per container, or a resource
    passed in) is therefore kept as a prefix and gets ``-<pid>``; without one,
    each pipeline gets a random UUID.
    """
    unique = f"{given}-{os.getpid()}" if given else str(uuid.uuid4())
    return resource.merge(type(resource)({"service.instance.id": unique}))


def _instance_id_from_outside(resource: Any) -> str | None:
    """The id of a resource passed in, else one set in ``OTEL_RESOURCE_ATTRIBUTES``
    (not the SDK's own per-process default, which is already unique)."""
    if resource is not None:
        return resource.attributes.get("service.instance.id")
    from opentelemetry.sdk.resources import OTELResourceDetector

    return OTELResourceDetector().detect().attributes.get("service.instance.id")


def build_pipeline(settings: Settings, targets_for: Callable[[QueryMetrics], StateTargets], *,
                   registry: CollectorRegistry | None = None, resource: Any = None,
                   providers: tuple[str, ...] = (), job_functions: tuple[str, ...] = (),
                   tracing: bool = False, extra_readers: tuple = ()) -> Pipeline:
    """Build a pipeline; ``targets_for`` gets the query recorder so engines found later get instrumented.

    ``tracing``: also build a tracer provider with the same resource, and note
    exemplar span contexts on the HTTP and query hot paths (telemetry.tracing).
    ``extra_readers``: more metric readers (they receive the hot families too),
    for embedding and for the benchmark's OTLP encoding cost.
    """
    owns_registry = registry is None
    registry = registry if registry is not None else CollectorRegistry(auto_describe=False)
    sdk_registry = CollectorRegistry(auto_describe=False)  # the bridge's families, without the hot ones
    readers = []
    if "prometheus" in settings.exporters:
        readers.append(build_prometheus_reader(sdk_registry))
    if "otlp" in settings.exporters:
        readers.append(build_otlp_reader(settings.otlp_protocol, settings.export_interval_ms))
    readers.extend(extra_readers)
    resource = per_process_identity(resource if resource is not None else build_resource(),
                                    _instance_id_from_outside(resource))
    instance_id = str(resource.attributes["service.instance.id"])
    meter_provider = build_meter_provider(readers, resource, max_series=settings.max_series,
                                          drop_scopes=() if settings.keep_semconv_metrics else INSTRUMENTATION_SCOPES)
    meter = meter_provider.get_meter(catalog.METER_NAME, catalog.VERSION)
    produced = build_produced(settings.native_histograms, InstrumentationScope(catalog.METER_NAME, catalog.VERSION),
                              resource, wants=lambda reader: isinstance(reader, ProcessLocalReader))
    for reader in readers:
        if not isinstance(reader, PrometheusMetricReader):  # Prometheus renders them directly (telemetry.direct)
            reader.produced = produced
    direct = DirectSource(produced, sdk_registry)
    registry.register(direct)
    overflow = OverflowCounter()
    sanitizer = LabelSanitizer()  # the one boundary every label value passes (telemetry.labels)

    def guard(family: catalog.Family) -> SeriesGuard:
        return SeriesGuard(family.name, family.label_keys, settings.max_series, overflow, sanitizer)
    queries = QueryMetrics(guard=guard(catalog.family("sublarr_db_queries_total")), exemplars=tracing,
                           produced=produced)
    http = HttpMetrics(meter, guard=guard(catalog.family("sublarr_http_requests_total")), exemplars=tracing,
                       produced=produced)
    subtitles = SubtitleMetrics(meter, providers or settings.providers, guards=guard)
    jobs = JobMetrics(job_functions or settings.job_functions, guards=guard, produced=produced)
    targets = targets_for(queries)
    callbacks = CallbackLayer(meter, targets, budget=settings.source_timeout,
                              max_points=settings.max_series, overflow=overflow, sanitizer=sanitizer)
    overflow.register(meter)  # last: it observes what the callbacks above folded
    sanitizer.register(meter)  # likewise: it observes what the recorders above rewrote
    tracer_provider = None
    if tracing:
        from .tracing import build_tracer_provider
        tracer_provider = build_tracer_provider(settings, resource)
    target(targets.engine)  # instrument now when the engine is already there
    pipeline = Pipeline(settings=settings, instance_id=instance_id, meter_provider=meter_provider,
                        registry=registry,
                        renderer=ScrapeRenderer(registry, CachedExposition(direct) if owns_registry else None),
                        http=http, subtitles=subtitles, queries=queries, jobs=jobs, callbacks=callbacks,
                        owner_pid=os.getpid(), resource=resource, tracer_provider=tracer_provider, direct=direct)
    _exit_handler(pipeline)
    return pipeline
