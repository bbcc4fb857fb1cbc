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

from servers import ServerError, ServerUnavailable, _Server


def find_prometheus() -> str:
    """SUBLARR_PROMETHEUS, else `prometheus` on PATH (Debian's package)."""
    configured = os.environ.get("SUBLARR_PROMETHEUS")
    if configured:
        if not os.access(configured, os.X_OK):
            raise ServerUnavailable(f"SUBLARR_PROMETHEUS={configured} is not an executable")
        return configured
    found = shutil.which("prometheus")
    if found is None:
        raise ServerUnavailable("prometheus is not installed (Debian package `prometheus`)")
    return found


class PrometheusServer(_Server):
    """``prometheus`` with a given config dict (YAML is a superset of JSON).

    ``rule_files`` maps a path relative to the config (as the config's
    ``rule_files`` names it) to a source file to copy there.
    """

    name = "prometheus"

    def __init__(self, binary: str | None = None, config: dict | None = None,
                 rule_files: dict[str, str | Path] | None = None) -> None:
        self.binary = binary or find_prometheus()
        super().__init__()
        self.config_path = self.dir / "prometheus.yml"
        self.config_path.write_text(json.dumps(config or {}, indent=2))
        for relative, source in (rule_files or {}).items():
            target = self.dir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- HTTP API ------------------------------------------------------------
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

    def query(self, expr: str) -> list[dict]:
        """Instant query: the result vector (or a one-element list for a scalar)."""
        data = self.api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def active_targets(self) -> list[dict]:
        return self.api("targets", state="active")["activeTargets"]

    def label_values(self, label: str, match: str) -> list[str]:
        return self.api(f"label/{label}/values", **{"match[]": match})

    def rules(self) -> list[dict]:
        return [rule for group in self.api("rules")["groups"] for rule in group["rules"]]

    # -- _Server hooks -------------------------------------------------------
    def _command(self) -> list[str]:
        return [self.binary, f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h", "--log.level=info"]

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                return response.status == 200
        except (OSError, ValueError):
            return False
