"""Reading built Grafana dashboards (the committed JSON): their panels, queries and variables.

``sublarr-telemetry check`` asks Prometheus for every panel's query; it reads
the dashboards as JSON files, so it needs neither the generator
(monitoring/sublarr_dashboards) nor grafana-foundation-sdk.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

DASHBOARDS_DIR = Path("monitoring") / "grafana" / "dashboards"
"""Where a checkout keeps the provisioned dashboards (relative to its root)."""


def default_dashboards_dir() -> Path | None:
    """``monitoring/grafana/dashboards`` of the current directory, else of the source tree this runs from."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (root / DASHBOARDS_DIR).is_dir():
            return root / DASHBOARDS_DIR
    return None


def load_dashboards(directory: Path) -> dict[str, dict]:
    """Every ``*.json`` dashboard in ``directory``, by uid (ValueError naming a file that is not one)."""
    found = {}
    for path in sorted(Path(directory).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a dashboard JSON file ({exc})") from exc
        if not isinstance(data, dict) or not isinstance(data.get("uid"), str):
            raise ValueError(f"{path}: not a dashboard JSON file (no uid)")
        found[data["uid"]] = data
    return found


def iter_panels(dashboard: dict) -> Iterator[dict]:
    """Every panel that is not a row, including panels inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def panel_queries(dashboard: dict) -> list[tuple[str, str, str]]:
    """(panel title, refId, expr) of every Prometheus target of every panel."""
    found = []
    for panel in iter_panels(dashboard):
        for target in panel.get("targets", []):
            if "expr" in target:
                found.append((panel.get("title", ""), target.get("refId", ""), target["expr"]))
    return found


def variable_queries(dashboard: dict) -> list[tuple[str, str]]:
    """(variable name, query) of every query variable."""
    found = []
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable.get("query")
            if isinstance(query, dict):
                query = query.get("query", "")
            found.append((variable["name"], query))
    return found
