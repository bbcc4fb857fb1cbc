"""A real single-node VictoriaMetrics for tests: own process, free port, temp storage.

The binary comes from scripts/build-victoriametrics (or env
SUBLARR_VICTORIAMETRICS); tests never build it, they only ask the script
where it would be. Queries go through its Prometheus-compatible API.
"""
from __future__ import annotations

from harness.net import answers_ok
from harness.prometheus_server import PrometheusAPI
from harness.servers import _Server, built_path, configured_binary
from harness.support import REPO

BUILD_SCRIPT = REPO / "scripts" / "build-victoriametrics"


def find_victoriametrics() -> str:
    """SUBLARR_VICTORIAMETRICS, else the path scripts/build-victoriametrics built; never builds."""
    return configured_binary("SUBLARR_VICTORIAMETRICS") or built_path(BUILD_SCRIPT, "victoria-metrics")


class VictoriaMetricsServer(PrometheusAPI, _Server):
    """victoria-metrics on 127.0.0.1 with ``flags`` added to the test defaults."""

    name = "victoriametrics"

    def __init__(self, binary: str | None = None, flags=()) -> None:
        self.binary = binary or find_victoriametrics()
        self.flags = list(flags)
        super().__init__()

    @property
    def otlp_endpoint(self) -> str:
        """Base URL for an OTLP/HTTP exporter (which appends /v1/metrics)."""
        return f"{self.url}/opentelemetry"

    def _command(self) -> list[str]:
        # latencyOffset 0 and no result cache: a test sees a push as soon as it is stored.
        return [self.binary, f"-storageDataPath={self.dir / 'data'}", f"-httpListenAddr=127.0.0.1:{self.port}",
                "-search.latencyOffset=0s", "-search.disableCache", "-retentionPeriod=1d", *self.flags]

    def _ready(self) -> bool:
        return answers_ok(f"{self.url}/health", timeout=1)
