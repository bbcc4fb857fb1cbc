"""The OTLP push reader (the Prometheus pull reader is built in :mod:`telemetry.meter_provider`).

The OTLP reader is process-local. The SDK restarts a periodic reader's thread
in a forked child, where it would re-send the parent's cumulative points
(double counting, and under the parent's identity). Here a child never
exports through its parent's reader: the web side builds a fresh pipeline
after a fork (new ``service.instance.id``), and an RQ work-horse hands what it
recorded back to its worker instead (see :mod:`telemetry.rq_worker`).
"""
from __future__ import annotations

import os

from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader

from ._compat import NoRestartInForkedChild
from .histograms import InjectingReaderMixin


class ProcessLocalReader(NoRestartInForkedChild, InjectingReaderMixin, PeriodicExportingMetricReader):
    """A periodic reader that exports only from the process that created it
    (and also sends the histograms aggregated in :mod:`telemetry.histograms`)."""

    def __init__(self, exporter: MetricExporter, **kwargs):
        self._owner_pid = os.getpid()
        super().__init__(exporter, **kwargs)

    @property
    def in_owner(self) -> bool:
        return os.getpid() == self._owner_pid

    def collect(self, timeout_millis: float = 10_000) -> None:
        if self.in_owner:
            super().collect(timeout_millis=timeout_millis)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return super().force_flush(timeout_millis) if self.in_owner else True


def build_otlp_exporter(protocol: str) -> MetricExporter:
    """The SDK's OTLP exporter; endpoint, headers, timeout and temporality come
    from the standard ``OTEL_EXPORTER_OTLP_*`` variables it reads itself."""
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        except ImportError as exc:
            raise ImportError(f"OTLP over gRPC needs opentelemetry-exporter-otlp-proto-grpc ({exc})") from exc
        return OTLPMetricExporter()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    return OTLPMetricExporter()


def build_otlp_reader(protocol: str, interval_millis: float | None = None) -> ProcessLocalReader:
    """Interval: ``OTEL_METRIC_EXPORT_INTERVAL`` (read by the SDK) unless given."""
    return ProcessLocalReader(build_otlp_exporter(protocol), export_interval_millis=interval_millis)
