"""Grafana dashboards for the ``sublarr_*`` series, generated from Python.

``build_all()`` returns every dashboard as plain JSON data keyed by uid;
``python -m telemetry.dashboards`` writes them to
``monitoring/grafana/dashboards/<uid>.json`` (``--check`` only compares).
Building needs the ``dashboards`` extra (grafana-foundation-sdk); reading a
built dashboard (:func:`panel_queries`, :func:`variable_queries`) does not.
"""
from __future__ import annotations

import json
from collections.abc import Iterator

DASHBOARD_MODULES = ("overview", "database", "jobs")
"""One module per dashboard, each with ``UID`` and ``build() -> dict``."""

UIDS = ("sublarr-overview", "sublarr-database", "sublarr-jobs")


def build_all() -> dict[str, dict]:
    """Every dashboard as JSON-able data, by uid (needs grafana-foundation-sdk)."""
    import importlib

    out: dict[str, dict] = {}
    for name in DASHBOARD_MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        data = module.build()
        if data.get("uid") != module.UID or module.UID in out:
            raise RuntimeError(f"dashboard module {name}: uid {data.get('uid')!r} is not its UID {module.UID!r}")
        out[module.UID] = data
    return out


def render(dashboard: dict) -> str:
    """The committed form: sorted keys, two-space indent, trailing newline."""
    return json.dumps(dashboard, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


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
