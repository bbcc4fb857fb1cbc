"""Meter provider set-up: resource, views from the catalog, Prometheus reader.

Each :class:`~telemetry.Telemetry` gets its own provider and its own
``CollectorRegistry`` (never the global ones), so two apps in one process, or
two tests, never share series.

``target_info``: the Prometheus reader is built with ``disable_target_info``.
The resource (service.name, service.instance.id, ...) identifies the process
on the OTLP path, where the collector turns it into ``job``/``instance``; on
the direct path Prometheus itself adds ``job`` and ``instance``, and a
``target_info`` family would only add a series no dashboard reads.
Instrumentation-scope labels (``otel_scope_*``) are switched off for the same
reason and because the contract forbids extra labels.
"""
from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.metrics.view import DropAggregation, ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from prometheus_client import CollectorRegistry

from . import catalog
from .catalog import Family, Kind


def build_resource(defaults: dict[str, str] | None = None) -> Resource:
    """Resource with ``service.name`` defaulting to ``sublarr``.

    ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` (read by the SDK's
    detector) win over the built-in defaults and over ``defaults`` (such as a
    generated ``service.instance.id``).
    """
    detected = Resource.create()
    base = Resource({SERVICE_NAME: catalog.SERVICE_NAME_DEFAULT, SERVICE_VERSION: catalog.VERSION,
                     **(defaults or {})})
    resource = base.merge(detected)
    if detected.attributes.get(SERVICE_NAME, "").startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: catalog.SERVICE_NAME_DEFAULT}))
    return resource


# SDK 1.45.2 added a per-view cardinality limit (folding extra label sets into an
# ``otel_metric_overflow`` series, 2,000 by default); older SDKs have no limit at all.
VIEW_HAS_CARDINALITY_LIMIT = "aggregation_cardinality_limit" in inspect.signature(View.__init__).parameters


def view_for(family: Family, max_series: int | None = None) -> View:
    """The view that fixes one family's name, label allow-list and buckets.

    The SDK's own cardinality limit sits above the family cap enforced by
    :mod:`telemetry.cardinality`, so the SDK never adds its
    ``otel_metric_overflow`` label (which is outside the contract).
    """
    aggregation = None
    if family.kind is Kind.HISTOGRAM:
        aggregation = ExplicitBucketHistogramAggregation(boundaries=family.buckets)
    limit = {}
    if VIEW_HAS_CARDINALITY_LIMIT and max_series is not None:
        limit["aggregation_cardinality_limit"] = max_series + 16
    return View(
        instrument_name=family.instrument_name,
        meter_name=catalog.METER_NAME,
        attribute_keys=set(family.label_keys),
        aggregation=aggregation,
        **limit,
    )


def build_views(families: Iterable[Family] = catalog.FAMILIES, max_series: int | None = None) -> list[View]:
    return [view_for(f, max_series) for f in families]


INSTRUMENTATION_SCOPES = (
    "opentelemetry.instrumentation.sqlalchemy",  # db.client.connections.usage
    "opentelemetry.instrumentation.redis",
    "opentelemetry.instrumentation.wsgi",
    "opentelemetry.instrumentation.flask",  # http.server.request.duration, http.server.active_requests
)
"""Meters of the tracing instrumentations (telemetry.tracing). Their metrics
are dropped unless ``SUBLARR_METRICS_KEEP_SEMCONV`` keeps them: one exact
scope name per view, never a wildcard that could also match ``sublarr``."""


def drop_views(scopes: Iterable[str] = INSTRUMENTATION_SCOPES) -> list[View]:
    return [View(meter_name=scope, aggregation=DropAggregation()) for scope in scopes]


def build_prometheus_reader(registry: CollectorRegistry) -> PrometheusMetricReader:
    """The bridge for the SDK's metrics; the hot families reach Prometheus directly (telemetry.direct)."""
    return PrometheusMetricReader(
        disable_target_info=True,
        scope_info_enabled=False,
        registry=registry,
    )


def build_meter_provider(
    readers: Sequence[MetricReader],
    resource: Resource | None = None,
    max_series: int | None = None,
    drop_scopes: Iterable[str] = (),
) -> MeterProvider:
    return MeterProvider(
        metric_readers=list(readers),
        resource=resource or build_resource(),
        views=build_views(max_series=max_series) + drop_views(drop_scopes),
        shutdown_on_exit=False,  # telemetry.pipeline registers an exit handler that stops the sources first
    )
