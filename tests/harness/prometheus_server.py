"""A real Prometheus server for tests: own process, free port, temp storage.

Same lifecycle as servers.py (``start()``, ``stop()``, ``close()``); the
config is written into the server's temp dir, with rule files copied next to
it so relative ``rule_files`` entries resolve the way they do in production
(relative to the config file). Queries go through the HTTP API with the
standard library only.
"""
from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from harness.net import answers_ok
from harness.servers import ServerError, ServerUnavailable, _Server, built_path, configured_binary
from harness.support import REPO

BUILD_SCRIPT = REPO / "scripts" / "build-prometheus"

# The server lines every Prometheus test runs against: Debian's package (2.42
# on bookworm, the oldest supported) and the Prometheus 3 release that
# scripts/build-prometheus builds and compose.yaml runs.
DEBIAN = "debian"
PROMETHEUS3 = "prom3"
LINES = (DEBIAN, PROMETHEUS3)


def prometheus3_bin_dir() -> Path:
    """Where scripts/build-prometheus put prometheus and promtool; never builds."""
    return Path(built_path(BUILD_SCRIPT, "Prometheus 3"))


def find_prometheus(line: str = DEBIAN) -> str:
    """The server binary of ``line``.

    Debian: SUBLARR_PROMETHEUS, else `prometheus` on PATH. Prometheus 3:
    SUBLARR_PROMETHEUS3, else the build of scripts/build-prometheus.
    """
    if line == PROMETHEUS3:
        return configured_binary("SUBLARR_PROMETHEUS3") or str(prometheus3_bin_dir() / "prometheus")
    configured = configured_binary("SUBLARR_PROMETHEUS")
    if configured:
        return configured
    found = shutil.which("prometheus")
    if found is None:
        raise ServerUnavailable("prometheus is not installed (Debian package `prometheus`)")
    return found


def find_promtool(line: str = DEBIAN) -> str:
    """promtool of ``line``: the one beside SUBLARR_PROMETHEUS3 or in the
    build directory for Prometheus 3, `promtool` on PATH for Debian's."""
    if line == PROMETHEUS3:
        configured = configured_binary("SUBLARR_PROMETHEUS3")
        directory = Path(configured).parent if configured else prometheus3_bin_dir()
        found = directory / "promtool"
        if not os.access(found, os.X_OK):
            raise ServerUnavailable(f"no promtool beside the Prometheus 3 server in {directory}")
        return str(found)
    found = shutil.which("promtool")
    if found is None:
        raise ServerUnavailable("promtool is not installed (Debian package `prometheus`)")
    return found


class PrometheusAPI:
    """The Prometheus HTTP query API (``/api/v1/*``), which VictoriaMetrics serves too."""

    port: int  # and log_tail(), from servers._Server

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, **params) -> dict:
        """GET /api/v1/<path>; returns ``data``, raises ServerError on any error."""
        query = urllib.parse.urlencode(params, doseq=True)
        url = f"{self.url}/api/v1/{path}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
            raise ServerError(f"{path} {params}: HTTP {exc.code}: {body.get('error', body)}") from None
        except (OSError, ValueError) as exc:
            raise ServerError(f"{path} {params}: {exc}; log:\n{self.log_tail()}") from None
        if body.get("status") != "success":
            raise ServerError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str, **params) -> list[dict]:
        """Instant query: the result vector (or a one-element list for a scalar)."""
        data = self.api("query", query=expr, **params)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def answer(self, expr: str, without: tuple[str, ...] = ("__name__", "job", "instance")) -> list[tuple[dict, float]]:
        """The instant query's answer as (labels without ``without``, value), sorted by labels:
        one list to compare whole with the series and values a test expects."""
        rows = [({k: v for k, v in series["metric"].items() if k not in without}, float(series["value"][1]))
                for series in self.query(expr)]
        return sorted(rows, key=lambda row: sorted(row[0].items()))

    def label_values(self, label: str, match: str) -> list[str]:
        return self.api(f"label/{label}/values", **{"match[]": match})

    def series(self, match: str) -> list[dict[str, str]]:
        """Label sets (with __name__) of every series ``match`` selects."""
        return self.api("series", **{"match[]": match})


class PrometheusServer(PrometheusAPI, _Server):
    """``prometheus`` with a given config dict (YAML is a superset of JSON).

    ``rule_files`` maps a path relative to the config (as the config's
    ``rule_files`` names it) to a source file to copy there; ``flags`` are
    extra command-line flags (e.g. ``--web.enable-otlp-receiver``).
    """

    name = "prometheus"

    def __init__(self, binary: str | None = None, config: dict | None = None,
                 rule_files: dict[str, str | Path] | None = None, flags=()) -> None:
        self.binary = binary or find_prometheus()
        self.flags = list(flags)
        super().__init__()
        self.config_path = self.dir / "prometheus.yml"
        self.config_path.write_text(json.dumps(config or {}, indent=2))
        for relative, source in (rule_files or {}).items():
            target = self.dir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)

    @property
    def otlp_metrics_endpoint(self) -> str:
        """Prometheus 3's OTLP receiver (needs --web.enable-otlp-receiver)."""
        return f"{self.url}/api/v1/otlp/v1/metrics"

    def active_targets(self) -> list[dict]:
        return self.api("targets", state="active")["activeTargets"]

    def rules(self) -> list[dict]:
        return [rule for group in self.api("rules")["groups"] for rule in group["rules"]]

    # -- _Server hooks -------------------------------------------------------
    def _command(self) -> list[str]:
        return [self.binary, f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h", "--log.level=info", *self.flags]

    def _ready(self) -> bool:
        return answers_ok(f"{self.url}/-/ready", timeout=1)
