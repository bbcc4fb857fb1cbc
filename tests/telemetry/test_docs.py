"""The README and docs agree with the catalog and with CI; the repository stands alone."""
import math
import os
import re
from pathlib import Path

from harness.support import REPO
from telemetry import catalog, catalog_docs, settings_docs, variables


def test_readme_metric_reference_is_current():
    readme = (REPO / "README.md").read_text()
    assert catalog_docs.replace_section(readme, catalog_docs.markdown()) == readme, \
        "README metric reference is stale: run `sublarr-telemetry catalog --write-readme`"
    for family in catalog.FAMILIES:
        assert f"`{family.name}`" in readme


def test_contract_page_reference_is_current():
    page = (REPO / "docs" / "metrics.md").read_text()
    assert catalog_docs.replace_section(page, catalog_docs.markdown()) == page, \
        "docs/metrics.md is stale: run `sublarr-telemetry catalog --write-readme docs/metrics.md`"
    assert "(docs/metrics.md)" in (REPO / "README.md").read_text()


def test_nothing_reads_outside_the_repository():
    """A user's clone has nothing beside it: no file may point at a sibling checkout."""
    sibling = re.compile(r"\.\./" + r"shared|/work/" + r"shared|(?<![\w/])shared/" + r"[A-Z]+\.md")
    offenders, read = [], 0
    for directory, subdirs, names in os.walk(REPO):
        subdirs[:] = [d for d in subdirs if d in (".ci",) or not (d.startswith(".") or d == "__pycache__"
                                                                  or d.endswith(".egg-info"))]
        for name in names:
            path = Path(directory, name)
            text = path.read_text(encoding="utf-8", errors="replace")
            read += 1
            offenders += [f"{path.relative_to(REPO)}: {m.group(0)}" for m in sibling.finditer(text)]
    assert read > 100 and offenders == []


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"^(scripts/\w+)", readme, flags=re.M)
    assert commands[:2] == ["scripts/demo", "scripts/test"]
    ci = (REPO / ".ci" / "run").read_text()
    # ... from a copy of the repository in a new temporary directory, nothing beside it.
    commands = [line for line in ci.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert "mktemp -d" in ci and 'cd "$copy"' in commands
    suites = [i for i, line in enumerate(commands) if re.match(r"scripts/test(-lowest)?\b", line)]
    assert suites and min(suites) > commands.index('cd "$copy"'), "CI runs no scripts/test in the copy"
    assert re.match(r"scripts/test -q\b", commands[suites[0]])


def test_settings_reference_is_current():
    page = (REPO / "docs" / "settings.md").read_text()
    assert catalog_docs.replace_section(page, settings_docs.markdown(), settings_docs.BEGIN, settings_docs.END) \
        == page, "docs/settings.md is stale: run `sublarr-telemetry settings --write-docs`"
    documented = re.findall(r"^\| `([A-Z0-9_]+)` \|", page, flags=re.M)
    assert documented == [variable.name for variable in variables.VARIABLES]
    assert "(docs/settings.md)" in (REPO / "README.md").read_text()


# A whole variable name: not a prefix such as OTEL_EXPORTER_OTLP_{signal}_ or a pattern such as OTEL_BSP_*.
_VARIABLE = re.compile(r"(?<![A-Za-z0-9_])(?:SUBLARR_METRICS|OTEL)_[A-Z0-9_]*[A-Z0-9](?![A-Za-z0-9_*{])")


def test_every_variable_the_package_names_is_in_the_table():
    """Code, messages and docstrings of backend/telemetry name no variable the table lacks."""
    named = {}
    for path in sorted((REPO / "backend" / "telemetry").rglob("*.py")):
        for name in _VARIABLE.findall(path.read_text(encoding="utf-8")):
            named.setdefault(name, str(path.relative_to(REPO)))
    assert len(named) > 30 and "OTEL_SEMCONV_STABILITY_OPT_IN" in named  # the scan finds what tracing.py reads
    missing = {name: where for name, where in named.items() if name not in variables.BY_NAME}
    assert missing == {}, "add these to telemetry.variables.VARIABLES"


def test_monitoring_guide_reference_and_alert_table_are_current():
    import yaml

    guide = (REPO / "monitoring" / "README.md").read_text()
    assert catalog_docs.replace_section(guide, catalog_docs.markdown()) == guide, \
        "monitoring/README.md reference is stale: run `sublarr-telemetry catalog --write-readme monitoring/README.md`"
    rules = yaml.safe_load((REPO / "monitoring" / "prometheus" / "rules" / "sublarr.rules.yml").read_text())
    alerts = {r["alert"]: r["labels"]["severity"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    table = dict(re.findall(r"^\| (Sublarr\w+) \| (\w+) \|", guide, flags=re.M))
    assert table == alerts
    runbook = (REPO / "monitoring" / "runbook.md").read_text()
    for alert in alerts:
        assert f"(runbook.md#{alert.lower()})" in guide
        assert re.search(rf"^## {alert}$", runbook, flags=re.M), alert


_DELIMITER_ROW = re.compile(r"\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?")


def _cell_count(row: str) -> int:
    """Cells of a Markdown table row as GitHub splits them: on pipes not escaped with a backslash."""
    row = row.strip().removeprefix("|")
    if row.endswith("|") and not row.endswith("\\|"):
        row = row[:-1]
    return len(re.split(r"(?<!\\)\|", row))


def test_every_markdown_table_has_as_many_delimiter_cells_as_header_cells():
    """GitHub renders a table whose delimiter row has another cell count as plain text."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "monitoring").glob("*.md"))]
    broken, tables = [], 0
    for page in pages:
        lines = page.read_text(encoding="utf-8").splitlines()
        for number, (header, delimiter) in enumerate(zip(lines, lines[1:]), start=1):
            if "|" in header and "|" in delimiter and _DELIMITER_ROW.fullmatch(delimiter.strip()):
                tables += 1
                if _cell_count(header) != _cell_count(delimiter):
                    broken.append(f"{page.relative_to(REPO)}:{number}: {header.strip()}")
    assert tables > 10  # the scan finds the tables (metric references, settings, alerts, ...)
    assert broken == []


def test_monitoring_guide_says_how_long_each_source_keeps_its_last_reading():
    """The 'last good reading kept' column is what the callback layer does."""
    from opentelemetry.sdk.metrics import MeterProvider

    from telemetry.state.callbacks import CallbackLayer, StateTargets

    guide = (REPO / "monitoring" / "README.md").read_text()
    rows = re.findall(r"^\| ([a-z_, ]+) \| .* \| (?:([0-9.]+) (s|min)|for ever) \|$", guide, flags=re.M)
    documented = {name.strip(): float(amount) * (60 if unit == "min" else 1) if amount else math.inf
                  for names, amount, unit in rows for name in names.split(",")}
    provider = MeterProvider()
    layer = CallbackLayer(provider.get_meter("docs-test"), StateTargets())
    try:
        actual = {name: source.stale_after for name, source in layer.sources.items()}
    finally:
        provider.shutdown()
    assert documented == actual
