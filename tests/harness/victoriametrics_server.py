"""A real single-node VictoriaMetrics for tests: own process, free port, temp storage.

The binary comes from scripts/build-victoriametrics (or env
SUBLARR_VICTORIAMETRICS); tests never build it, they only ask the script
where it would be. Queries go through its Prometheus-compatible API.
"""
from __future__ import annotations

import os
import subprocess
import urllib.request

from harness.prometheus_server import PrometheusAPI
from harness.servers import ServerUnavailable, _Server
from harness.support import REPO

BUILD_SCRIPT = REPO / "scripts" / "build-victoriametrics"


def find_victoriametrics() -> str:
    configured = os.environ.get("SUBLARR_VICTORIAMETRICS")
    if configured:
        if not os.access(configured, os.X_OK):
            raise ServerUnavailable(f"SUBLARR_VICTORIAMETRICS={configured} is not an executable")
        return configured
    result = subprocess.run([str(BUILD_SCRIPT), "--print-path"], capture_output=True, text=True, timeout=30)
    path = result.stdout.strip()
    if result.returncode != 0 or not path:
        raise ServerUnavailable(f"victoria-metrics is not built (expected {path or '?'}); "
                                "run scripts/build-victoriametrics")
    return path


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
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                return response.status == 200
        except (OSError, ValueError):
            return False
