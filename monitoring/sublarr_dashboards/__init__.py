"""Grafana dashboards for the ``sublarr_*`` series, generated from Python (not installed with the package).

``build_all()`` returns every dashboard as plain JSON data keyed by uid;
``scripts/dashboards`` writes them to ``monitoring/grafana/dashboards/<uid>.json``
(``--check`` only compares). Building needs the ``dashboards`` extra
(grafana-foundation-sdk); reading a built dashboard is
:mod:`telemetry.dashboard_json`'s job, which the runtime's ``check`` uses.
"""
from __future__ import annotations

import json

DASHBOARD_MODULES = ("overview", "database", "jobs")
"""One module per dashboard, each with ``UID`` and ``build() -> dict``."""


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
