"""The console script's subcommands answer as documented."""
import json
import subprocess

from support import venv_executable
from telemetry import catalog

CLI = venv_executable("sublarr-telemetry")


def run(*args):
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=60)


def test_catalog_json_lists_every_family():
    result = run("catalog", "--format", "json")
    assert result.returncode == 0
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == [f.name for f in catalog.FAMILIES]
    http = next(r for r in rows if r["name"] == "sublarr_http_request_duration_seconds")
    assert http["type"] == "histogram" and http["buckets"][0] == 0.01
    assert [label["key"] for label in http["labels"]] == ["method", "endpoint", "status"]


def test_catalog_table_and_help():
    table = run("catalog")
    assert table.returncode == 0 and "sublarr_queue_failed_jobs" in table.stdout
    top = run("--help")
    for command in ("demo", "catalog", "check", "bench"):
        assert command in top.stdout


def test_bench_parses_its_own_options():
    result = run("bench", "--help")
    assert result.returncode == 0 and "--quick" in result.stdout
