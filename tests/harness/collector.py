"""A real OpenTelemetry Collector (otelcol-sublarr) for tests, on free ports.

The binary comes from scripts/build-collector (or env SUBLARR_OTELCOL); tests
never build it themselves, they only ask the script where it would be
(``--print-path``), so a missing build is a quick skip/CI failure instead of a
ten-minute compile inside a test.

The collector runs otel-collector/config.yaml exactly as shipped: the ports
reach it through the ``${env:...}`` variables that config reads, so a test
exercises the same file compose uses. Lifecycle as in servers.py: ``start()``
launches and waits for the health check, ``stop()`` ends the process but keeps
the ports (a later ``start()`` brings the collector back where clients expect
it), ``close()`` ends it for good.
"""
from __future__ import annotations

import os
import subprocess
import urllib.error
import urllib.request

from harness.net import free_port
from harness.servers import ServerError, _Server, built_path, configured_binary
from harness.support import REPO

CONFIG = REPO / "otel-collector" / "config.yaml"
VENDOR_CONFIG = REPO / "otel-collector" / "vendor.yaml"
BUILD_SCRIPT = REPO / "scripts" / "build-collector"
BUILD_HINT = "run scripts/build-collector (needs Go and the Go module proxy)"


def find_binary() -> str:
    """SUBLARR_OTELCOL, else the path scripts/build-collector built; never builds."""
    return configured_binary("SUBLARR_OTELCOL") or built_path(BUILD_SCRIPT, "otelcol-sublarr")


def config_args(extra_configs=()) -> list[str]:
    """--config flags: the shipped config first, then overlays (paths or 'yaml:...')."""
    args = ["--config", str(CONFIG)]
    for extra in extra_configs:
        args += ["--config", str(extra)]
    return args


def validate(binary: str, extra_configs=(), env: dict | None = None) -> subprocess.CompletedProcess:
    """`otelcol-sublarr validate`: parses, resolves ${env:...} and checks every component."""
    return subprocess.run([binary, "validate", *config_args(extra_configs)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})})


def _http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    """(status, body); status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (OSError, ValueError):
        return 0, ""


class OtelCollector(_Server):
    """otelcol-sublarr with the shipped config (plus optional overlays) on 127.0.0.1.

    ``extra_configs`` are merged after config.yaml (file paths or 'yaml:...'
    snippets); ``env`` adds variables such as VENDOR_OTLP_ENDPOINT.
    """

    name = "otelcol"

    def __init__(self, binary: str | None = None, extra_configs=(), env: dict | None = None) -> None:
        self.binary = binary or find_binary()
        self.extra_configs = list(extra_configs)
        self.extra_env = dict(env or {})
        super().__init__()
        self._pick_ports()

    # -- endpoints -----------------------------------------------------------
    @property
    def otlp_http_endpoint(self) -> str:
        """Base URL; an OTLP/HTTP metric exporter posts to this + '/v1/metrics'."""
        return f"http://127.0.0.1:{self.otlp_http_port}"

    @property
    def otlp_grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.otlp_grpc_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}/"

    @property
    def self_metrics_url(self) -> str:
        """The collector's own otelcol_* metrics (refused/sent/failed points)."""
        return f"http://127.0.0.1:{self.self_metrics_port}/metrics"

    def scrape(self) -> str:
        status, body = _http_get(self.prometheus_url, timeout=5.0)
        if status != 200:
            raise ServerError(f"{self.prometheus_url} answered {status}; log:\n{self.log_tail()}")
        return body

    # -- lifecycle -----------------------------------------------------------
    def start(self, retries: int = 3):
        """Like _Server.start, but a port race re-picks all five ports, not one."""
        if self.running or self._ever_ready:
            return super().start(1)
        for attempt in range(retries):
            try:
                return super().start(1)
            except ServerError as exc:
                if "address already in use" not in str(exc).lower() or attempt == retries - 1:
                    raise
                self._pick_ports()
        return self

    # -- _Server hooks -------------------------------------------------------
    def _pick_ports(self) -> None:
        self.port = free_port()  # Prometheus exporter: the port tests scrape
        self.otlp_http_port = free_port()
        self.otlp_grpc_port = free_port()
        self.health_port = free_port()
        self.self_metrics_port = free_port()

    def _command(self) -> list[str]:
        return [self.binary, *config_args(self.extra_configs)]

    def _popen_kwargs(self) -> dict:
        return {"env": self._env()}

    def _env(self) -> dict:
        env = dict(os.environ)
        env.update({
            "OTLP_GRPC_ENDPOINT": f"127.0.0.1:{self.otlp_grpc_port}",
            "OTLP_HTTP_ENDPOINT": f"127.0.0.1:{self.otlp_http_port}",
            "PROMETHEUS_EXPORTER_ENDPOINT": f"127.0.0.1:{self.port}",
            "HEALTH_CHECK_ENDPOINT": f"127.0.0.1:{self.health_port}",
            "OTELCOL_METRICS_HOST": "127.0.0.1",
            "OTELCOL_METRICS_PORT": str(self.self_metrics_port),
        })
        env.update(self.extra_env)
        return env

    def _ready(self) -> bool:
        # health_check turns 200 only after every pipeline has started.
        return _http_get(self.health_url, timeout=1.0)[0] == 200
