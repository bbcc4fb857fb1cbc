"""Private names of other packages this project relies on, kept in one place.

Each entry says why no public API serves and what happens when the name goes
away; tests/telemetry/test_compat.py covers both the present and the missing
case, and tests/telemetry/test_public_apis.py fails when a private name of
another package is used anywhere else in backend/.

* Sublarr (v0.33) keeps its provider circuit breakers in the provider
  manager's private ``_circuit_breakers`` dict and offers no accessor. When the
  name disappears, :func:`sublarr_breakers` says so (the breakers source then
  reports itself down) instead of the family vanishing silently.
* The OpenTelemetry SDK (1.43+) lets a reader add to what it collects only
  through ``MetricReader._receive_metrics`` (the abstract method every reader
  implements) and the ``_collect`` callback the MeterProvider installs; its
  per-instrument temporality lives in ``_instrument_class_temporality``.
  :class:`CollectedBatchHook` is the one place these are touched; a reader
  class built on an SDK without them fails at class creation with
  :class:`ShapeChanged`, and a reader without the temporality table is read as
  cumulative (the SDK's default) with a warning.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

_log = logging.getLogger(__name__)

SUBLARR_BREAKERS_ATTRIBUTE = "_circuit_breakers"
"""ProviderManager._circuit_breakers: provider name -> CircuitBreaker (``state.value``)."""

SDK_READER_HOOKS = ("_receive_metrics", "_set_collect_callback")
"""What the SDK's MetricReader must still have for :class:`CollectedBatchHook` to work."""

SDK_TEMPORALITY_ATTRIBUTE = "_instrument_class_temporality"
"""MetricReader._instrument_class_temporality: SDK instrument class -> AggregationTemporality."""


class ShapeChanged(LookupError):
    """An object is there, but not in the shape this project knows."""


def sublarr_breakers(manager: Any) -> Mapping[str, Any]:
    """The breaker mapping of Sublarr's provider manager, or :class:`ShapeChanged`."""
    breakers = getattr(manager, SUBLARR_BREAKERS_ATTRIBUTE, None)
    if not isinstance(breakers, Mapping):
        raise ShapeChanged(f"{type(manager).__name__} has no mapping {SUBLARR_BREAKERS_ATTRIBUTE!r} "
                           "(the provider manager changed shape)")
    return breakers


_warned_temporality: set[type] = set()


def reader_temporality(reader: Any, instrument_class: type) -> Any:
    """The temporality ``reader`` prefers for ``instrument_class`` (or a subclass of it)."""
    from opentelemetry.sdk.metrics.export import AggregationTemporality

    table = getattr(reader, SDK_TEMPORALITY_ATTRIBUTE, None)
    if not isinstance(table, Mapping):
        if type(reader) not in _warned_temporality:
            _warned_temporality.add(type(reader))
            _log.warning("sublarr telemetry: %s has no %s (the OpenTelemetry SDK changed shape); "
                         "its hot histograms are sent as cumulative", type(reader).__name__,
                         SDK_TEMPORALITY_ATTRIBUTE)
        return AggregationTemporality.CUMULATIVE
    for cls, temporality in table.items():
        if issubclass(cls, instrument_class):
            return temporality
    return AggregationTemporality.CUMULATIVE


class CollectedBatchHook:
    """Mixin for an SDK MetricReader: :meth:`adjust_batch` sees (and may replace) each collected batch.

    The SDK skips ``_receive_metrics`` when its own collection is empty, so the
    collect callback it installs is wrapped to turn that ``None`` into an empty
    batch when :attr:`wants_empty_batches` is true. ``adjust_batch`` returning
    ``None`` or an empty batch means nothing is sent this time.
    """

    wants_empty_batches = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        reader_bases = [base for base in cls.__mro__
                        if base.__module__.startswith("opentelemetry.") and base.__name__ == "MetricReader"]
        if reader_bases and not all(hasattr(reader_bases[0], hook) for hook in SDK_READER_HOOKS):
            raise ShapeChanged(f"the OpenTelemetry SDK's MetricReader no longer has {SDK_READER_HOOKS} "
                               f"(needed by {cls.__name__} to add the hot histograms)")

    def adjust_batch(self, metrics_data):
        return metrics_data

    @property
    def _collect(self):
        inner = self.__dict__.get("_sublarr_sdk_collect")
        if inner is None:
            return None

        def collect(reader, timeout_millis: float = 10_000):
            from opentelemetry.sdk.metrics.export import MetricsData

            data = inner(reader, timeout_millis=timeout_millis)
            return MetricsData(resource_metrics=[]) if data is None and self.wants_empty_batches else data
        return collect

    @_collect.setter
    def _collect(self, value) -> None:
        self.__dict__["_sublarr_sdk_collect"] = value

    def _receive_metrics(self, metrics_data, timeout_millis: float = 10_000, **kwargs) -> None:
        metrics_data = self.adjust_batch(metrics_data)
        if metrics_data is None or not metrics_data.resource_metrics:
            return  # nothing at all this time: send nothing
        super()._receive_metrics(metrics_data, timeout_millis=timeout_millis, **kwargs)


class NoRestartInForkedChild:
    """Mixin for the SDK's PeriodicExportingMetricReader: a forked child does not restart its export thread.

    The SDK restarts the thread from ``_at_fork_reinit`` (registered with
    ``os.register_at_fork``); there is no public switch. Without the name
    (a changed SDK) the class fails at creation with :class:`ShapeChanged`.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        periodic = [base for base in cls.__mro__
                    if base.__module__.startswith("opentelemetry.") and base.__name__ == "PeriodicExportingMetricReader"]
        if periodic and not hasattr(periodic[0], "_at_fork_reinit"):
            raise ShapeChanged("the OpenTelemetry SDK's PeriodicExportingMetricReader no longer has "
                               f"'_at_fork_reinit' (needed by {cls.__name__} to stay silent in a forked child)")

    def _at_fork_reinit(self) -> None:  # the SDK calls this in a forked child
        pass
