"""`pip install sublarr-telemetry` alone (no extras) gives what a Flask app imports, and the CLI.

A fresh virtualenv gets the package built from a copy of what the Dockerfile
copies (pyproject.toml, README.md, backend/; not editable, so only what the
wheel ships is there, and no build/ directory is left in the checkout) with its core dependencies at the versions of
constraints/newest.txt; none of the extras' packages may be importable. In it,
a small Flask app calls ``init_telemetry`` and is scraped, and
``sublarr-telemetry check --help`` answers.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import pytest

from harness.support import REPO, missing

pytestmark = pytest.mark.e2e

APP = textwrap.dedent("""
    import importlib.util, json
    from flask import Flask
    from telemetry import init_telemetry

    app = Flask("core")

    @app.get("/api/v1/items/<int:item_id>")
    def item(item_id):
        return {"id": item_id}

    init_telemetry(app)
    client = app.test_client()
    assert client.get("/api/v1/items/7").status_code == 200
    scrape = client.get("/metrics")
    lines = [line for line in scrape.get_data(as_text=True).splitlines()
             if line.startswith("sublarr_http_requests_total{")]
    absent = [name for name in ("refapp", "sqlalchemy", "redis", "rq", "grafana_foundation_sdk",
                                "telemetry.bench", "telemetry.demo", "telemetry.dashboards", "bench",
                                "sublarr_dashboards", "sublarr_rules")
              if importlib.util.find_spec(name.split(".")[0]) is not None
              and (("." not in name) or importlib.util.find_spec(name) is not None)]
    print(json.dumps({"status": scrape.status_code, "lines": lines, "importable": absent}))
""")


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory):
    root = tmp_path_factory.mktemp("core")
    source = root / "source"
    for name in ("pyproject.toml", "README.md"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "backend", source / "backend",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           str(source), "-c", str(REPO / "constraints" / "newest.txt")],
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        missing(f"pip could not install the package into a fresh venv (is PyPI reachable?): {done.stderr[-1500:]}")
    return venv


def test_the_runtime_package_serves_metrics_with_only_its_core_dependencies(core_venv):
    import json
    run = subprocess.run([str(core_venv / "bin" / "python"), "-c", APP], capture_output=True, text=True,
                         timeout=120, cwd=core_venv)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result == {"status": 200, "importable": [], "lines": [
        'sublarr_http_requests_total{endpoint="/api/v1/items/<int:item_id>",method="GET",status="200"} 1.0']}


def test_the_check_command_answers_without_the_extras(core_venv):
    run = subprocess.run([str(core_venv / "bin" / "sublarr-telemetry"), "check", "--help"],
                         capture_output=True, text=True, timeout=60, cwd=core_venv)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("usage: sublarr-telemetry check [-h] --prometheus URL")
    assert "--dashboards DIR" in run.stdout
