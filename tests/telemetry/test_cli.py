"""The console script's subcommands answer as documented."""
import json
import subprocess
import sys

from harness.support import CLI, REPO, venv_executable
from telemetry import catalog, catalog_docs, settings_docs, variables


def run(*args):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)


def test_the_console_script_is_the_cli():
    script = subprocess.run([venv_executable("sublarr-telemetry"), "--help"], capture_output=True, text=True,
                            timeout=60)
    assert (script.returncode, script.stdout) == (0, run("--help").stdout)


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
    assert (table.returncode, table.stdout) == (0, catalog_docs.table())
    rows = [line.split()[0] for line in table.stdout.splitlines()[1:] if line.startswith("sublarr_")]
    assert rows == [f.name for f in catalog.FAMILIES]
    top = run("--help")
    assert top.returncode == 0
    assert "{catalog,check,settings}" in top.stdout  # the demo and the benchmark live in the checkout, not the package


def test_the_benchmark_runs_from_the_checkout_and_parses_its_own_options():
    result = subprocess.run([sys.executable, str(REPO / "bench" / "run.py"), "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "--quick" in result.stdout and result.stdout.startswith("usage: bench/run.py")


def test_settings_reference_from_the_cli(tmp_path):
    markdown = run("settings")
    assert (markdown.returncode, markdown.stdout) == (0, settings_docs.markdown())
    rows = json.loads(run("settings", "--format", "json").stdout)
    assert [row["name"] for row in rows] == [variable.name for variable in variables.VARIABLES]
    interval = next(row for row in rows if row["name"] == "OTEL_METRIC_EXPORT_INTERVAL")
    assert interval["fields"] == ["export_interval_ms"] and interval["accepted"].endswith("from 500 to 3600000")
    page = tmp_path / "settings.md"
    page.write_text(f"intro\n{settings_docs.BEGIN}\nold rows\n{settings_docs.END}\nafter\n")
    assert run("settings", "--write-docs", str(page)).stdout == f"{page}: updated\n"
    assert page.read_text() == f"intro\n{settings_docs.BEGIN}\n{settings_docs.markdown()}{settings_docs.END}\nafter\n"
    assert run("settings", "--write-docs", str(page)).stdout == f"{page}: already current\n"
