"""The generated Grafana dashboards: committed JSON is the generator's output,
and every dashboard follows the rules file provisioning and multi-process
Sublarr need (datasource variable, job/instance variables, $__rate_interval,
sum by, units and descriptions, current panel types only)."""
import importlib
import json
import re
import subprocess
import tomllib

import pytest

from harness.monitoring import DASHBOARD_DIR, EXPECTED_UIDS, committed_dashboards, metric_name_tokens
from harness.support import REPO, missing
from sublarr_dashboards import build_all, render
from telemetry.dashboard_json import iter_panels, panel_queries, variable_queries

REGENERATE = "scripts/dashboards"
PANEL_TYPES = {"timeseries", "stat", "gauge", "table", "bargauge"}
DS_REF = {"type": "prometheus", "uid": "${datasource}"}
SELECTOR_MATCHERS = ('job=~"$job"', 'instance=~"$instance"')
ALLOWED_RANGES = {"$__rate_interval", "$__range"}


@pytest.fixture(scope="module")
def sdk():
    try:
        importlib.import_module("grafana_foundation_sdk")
    except ImportError:
        missing("grafana-foundation-sdk is not installed (pip install -e '.[dashboards]')")


@pytest.fixture(scope="module")
def built(sdk):
    return build_all()


def test_committed_json_is_the_generators_output(built):
    committed = {path.name: path.read_text(encoding="utf-8") for path in DASHBOARD_DIR.glob("*.json")}
    expected = {f"{uid}.json": render(data) for uid, data in built.items()}
    stale = sorted(name for name in expected.keys() | committed.keys()
                   if committed.get(name) != expected.get(name))
    assert not stale, (f"monitoring/grafana/dashboards is out of date ({', '.join(stale)}); "
                       f"regenerate with: {REGENERATE}")


def test_output_is_deterministic(built):
    again = build_all()
    assert [render(built[uid]) for uid in sorted(built)] == [render(again[uid]) for uid in sorted(again)]
    for text in map(render, built.values()):
        assert text.endswith("}\n") and json.loads(text)
        assert text == json.dumps(json.loads(text), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def test_check_cli_names_stale_files(sdk, tmp_path):
    run = lambda *args: subprocess.run([str(REPO / "scripts" / "dashboards"), "--out", str(tmp_path), *args],
                                       capture_output=True, text=True, timeout=120)
    first = run("--check")
    assert first.returncode == 1 and "sublarr-overview.json: missing" in first.stderr, first.stderr
    assert "regenerate with: scripts/dashboards\n" in first.stderr
    assert run().returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{uid}.json" for uid in EXPECTED_UIDS)
    assert run("--check").returncode == 0
    changed = tmp_path / "sublarr-jobs.json"
    changed.write_text(changed.read_text().replace("Job outcomes", "Job results"))
    (tmp_path / "old.json").write_text("{}\n")
    stale = run("--check")
    assert stale.returncode == 1
    assert "sublarr-jobs.json: differs" in stale.stderr and "old.json: not generated" in stale.stderr
    assert "sublarr-overview.json" not in stale.stderr and "sublarr-database.json" not in stale.stderr


def test_sdk_is_pinned_once_and_the_tests_use_that_pin():
    """The generator's output depends on the SDK build: one exact pin, which the test extra reuses."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pins = [req for req in extras["dashboards"] if req.lower().startswith("grafana-foundation-sdk")]
    assert len(pins) == 1 and "==" in pins[0], pins
    assert "sublarr-telemetry[dashboards]" in extras["test"]
    assert not [req for req in extras["test"] if req.lower().startswith("grafana-foundation-sdk")]


def test_stable_uids_and_no_import_placeholders(built):
    assert set(built) == EXPECTED_UIDS
    assert set(committed_dashboards()) == EXPECTED_UIDS
    for uid, data in built.items():
        assert data["uid"] == uid and data["title"] and "sublarr" in data["tags"]
        text = json.dumps(data)
        assert "__inputs" not in data and "__requires" not in data, uid
        assert "${DS_" not in text and "DS_PROMETHEUS" not in text, uid
        assert data.get("id") is None, f"{uid}: a provisioned dashboard must not carry a database id"


def test_datasource_and_label_variables(built):
    for uid, data in built.items():
        variables = {v["name"]: v for v in data["templating"]["list"]}
        assert set(variables) == {"datasource", "job", "instance", "traces"}, uid
        traces = variables["traces"]
        assert traces["type"] == "datasource" and traces["query"] == "tempo" and not traces.get("current"), uid
        ds = variables["datasource"]
        assert ds["type"] == "datasource" and ds["query"] == "prometheus", uid
        assert ds["current"]["value"] == "sublarr-prometheus"
        for name in ("job", "instance"):
            var = variables[name]
            assert var["type"] == "query" and var["datasource"] == DS_REF, (uid, name)
            assert var["multi"] is True and var["includeAll"] is True and var["allValue"] == ".*", (uid, name)
            assert var["query"].startswith("label_values(sublarr_info") and var["query"].endswith(f", {name})")
            assert var["refresh"] in (1, 2), "options must be read from Prometheus, not stored"
        assert '{job=~"$job"}' in variables["instance"]["query"], "instance options follow the job choice"


EXEMPLAR_FAMILIES = ("sublarr_http_request_duration_seconds", "sublarr_db_query_duration_seconds",
                     "sublarr_job_duration_seconds")


def test_latency_panels_of_traced_families_show_exemplars_linked_to_the_traces_variable(built):
    """The request, query and job latency panels ask for exemplars (the direct path serves them in
    OpenMetrics), and an exemplar's trace_id opens the datasource the ``traces`` variable selects."""
    found = []
    for uid, data in built.items():
        for panel in iter_panels(data):
            exprs = [t.get("expr", "") for t in panel.get("targets", [])]
            traced = panel["type"] == "timeseries" and any(
                "histogram_quantile" in e and any(f in e for f in EXEMPLAR_FAMILIES) for e in exprs)
            asked = [t.get("exemplar", False) for t in panel.get("targets", [])]
            if not traced:
                assert not any(asked), (uid, panel["title"], "exemplars only where they exist")
                continue
            found.append(panel["title"])
            assert all(asked), (uid, panel["title"])
            (override,) = [o for o in panel["fieldConfig"]["overrides"]
                           if o["matcher"] == {"id": "byName", "options": "trace_id"}]
            (link,) = override["properties"][0]["value"]
            assert override["properties"][0]["id"] == "links"
            assert link["internal"]["datasourceUid"] == "${traces}" and link["internal"]["query"]["query"] == "${__value.raw}"
    assert sorted(found) == ["Job duration by function", "Query p95 by operation", "p95 latency by endpoint"], found


def test_panels_are_current_types_with_unit_description_and_datasource(built):
    problems = []
    for uid, data in built.items():
        ids = [p["id"] for p in data["panels"]] + [n["id"] for p in data["panels"] for n in p.get("panels", [])]
        if len(ids) != len(set(ids)):
            problems.append(f"{uid}: duplicate panel ids")
        for panel in iter_panels(data):
            where = f"{uid} / {panel.get('title')!r}"
            if panel["type"] not in PANEL_TYPES:
                problems.append(f"{where}: panel type {panel['type']!r}")
            if not panel.get("title") or not (panel.get("description") or "").strip():
                problems.append(f"{where}: title and description required")
            if not panel.get("fieldConfig", {}).get("defaults", {}).get("unit"):
                problems.append(f"{where}: no unit")
            if panel.get("datasource") != DS_REF:
                problems.append(f"{where}: datasource {panel.get('datasource')}")
            targets = panel.get("targets") or []
            if not targets:
                problems.append(f"{where}: no targets")
            for target in targets:
                if target.get("datasource") != DS_REF or not target.get("expr") or not target.get("refId"):
                    problems.append(f"{where}: target {target.get('refId')} lacks datasource, expr or refId")
            refs = [t.get("refId") for t in targets]
            if len(refs) != len(set(refs)):
                problems.append(f"{where}: duplicate refIds {refs}")
        text = json.dumps(data)
        for angular in ('"graph"', '"singlestat"', '"table-old"', "grafana-piechart-panel"):
            if f'"type": {angular}' in text:
                problems.append(f"{uid}: Angular panel {angular}")
    assert problems == []


def test_panels_tile_the_grid_without_overlap(built):
    for uid, data in built.items():
        cells = {}
        for panel in data["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24, (uid, panel["title"], pos)
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    assert (x, y) not in cells, f"{uid}: {panel['title']!r} overlaps {cells[(x, y)]!r}"
                    cells[(x, y)] = panel["title"]


def query_problems(expr: str) -> list[str]:
    """What is wrong with one panel query under the dashboard rules (empty: nothing)."""
    problems = []
    selectors = re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*\{([^}]*)\}", expr)
    if len(selectors) != len(metric_name_tokens(expr)):
        problems.append("every metric needs a {...} selector")
    for matchers in selectors:
        if not all(m in matchers for m in SELECTOR_MATCHERS):
            problems.append(f"selector {{{matchers}}} lacks the job/instance variables")
    for window in re.findall(r"\[([^\]]*)\]", expr):
        if window not in ALLOWED_RANGES:
            problems.append(f"fixed window [{window}] (use $__rate_interval)")
    functions = re.findall(r"\b(rate|increase|irate|delta|deriv)\(", expr)
    if set(functions) - {"rate", "increase"}:
        problems.append(f"functions {sorted(set(functions))}: use rate() or increase()")
    wrapped = re.findall(r"\b(?:sum|max)(?: by \([^)]*\) )?\((?:rate|increase)\(", expr)
    if len(wrapped) != len(functions):
        problems.append("every rate()/increase() must be aggregated with sum by (...)")
    for inner in re.findall(r"histogram_quantile\([0-9.]+, (.{0,12})", expr):
        if not inner.startswith("sum by (le"):
            problems.append("histogram_quantile needs sum by (le, ...)")
    if "$__interval" in expr:
        problems.append("$__interval (use $__rate_interval)")
    return problems


def test_queries_use_variables_rate_interval_and_sum_by(built):
    problems = [f"{uid} / {title} / {ref}: {problem}: {expr}"
                for uid, data in built.items() for title, ref, expr in panel_queries(data)
                for problem in query_problems(expr)]
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("expr, problem", [
    ('sum(rate(x_total{job=~"$job", instance=~"$instance"}[5m]))', "fixed window [5m]"),
    ('rate(x_total{job=~"$job", instance=~"$instance"}[$__rate_interval])', "must be aggregated"),
    ('sum(rate(x_total{job=~"$job"}[$__rate_interval]))', "lacks the job/instance"),
    ("sum(x)", "needs a {...} selector"),
    ('histogram_quantile(0.9, rate(h_bucket{job=~"$job", instance=~"$instance"}[$__rate_interval]))',
     "histogram_quantile needs sum by"),
    ('sum(irate(x_total{job=~"$job", instance=~"$instance"}[$__rate_interval]))', "use rate() or increase()"),
    ('sum(rate(x_total{job=~"$job", instance=~"$instance"}[$__interval]))', "fixed window [$__interval]"),
])
def test_query_rules_catch_mistakes(expr, problem):
    assert any(problem in found for found in query_problems(expr)), query_problems(expr)


def test_panel_queries_and_variable_queries_helpers(built):
    overview = built["sublarr-overview"]
    queries = panel_queries(overview)
    assert len(queries) == sum(len(p["targets"]) for p in iter_panels(overview))
    assert all(isinstance(t, str) and ref and expr for t, ref, expr in queries)
    assert ("Translation duration", "B") in {(t, r) for t, r, _ in queries}
    # Panels inside a collapsed row are found too.
    nested = {"panels": [{"type": "row", "collapsed": True, "panels": [
        {"type": "stat", "title": "inner", "targets": [{"refId": "A", "expr": "up"}]}]}]}
    assert panel_queries(nested) == [("inner", "A", "up")]
    assert dict(variable_queries(overview)) == {
        "job": "label_values(sublarr_info, job)",
        "instance": 'label_values(sublarr_info{job=~"$job"}, instance)'}


def test_monitoring_guide_dashboard_section_is_current(built):
    from sublarr_dashboards import guide

    text = (REPO / "monitoring" / "README.md").read_text(encoding="utf-8")
    assert guide.replace_section(text, guide.markdown()) == text, \
        "the dashboard section of monitoring/README.md is stale: run scripts/dashboards"


def test_monitoring_guide_describes_every_row_and_panel_with_a_unit(built):
    from sublarr_dashboards import guide

    section = guide.markdown()
    for dashboard in built.values():
        assert f"### {dashboard['title']}\n" in section
        for title, collapsed, panels in guide.rows(dashboard):
            assert re.search(rf"^#### {re.escape(title)}( \(collapsed by default\))?\n\n\*When to look:\* \S",
                             section, flags=re.M), title
            for panel in panels:
                line = next(l for l in section.splitlines() if l.startswith(f"| {panel['title']} ("))
                description, unit = [cell.strip() for cell in line.strip("|").split(" | ")[1:]]
                assert description and unit, line


def test_redis_row_is_collapsed_and_holds_its_panels(built):
    """Redis is optional: its row starts collapsed; every other row is open."""
    from sublarr_dashboards import guide

    redis_rows = 0
    for uid, dashboard in built.items():
        for title, collapsed, panels in guide.rows(dashboard):
            assert collapsed == (title == "Redis"), (uid, title)
            if collapsed:
                redis_rows += 1
                assert {p["title"] for p in panels} == {"Redis connection", "Redis memory"}
                row = next(p for p in dashboard["panels"] if p.get("title") == title)
                assert row["panels"] == panels  # nested, as Grafana wants for a collapsed row
    assert redis_rows >= 1, "no dashboard has the Redis row"


def test_trace_datasource_is_provisioned_only_when_copied_into_place():
    import yaml

    folder = REPO / "monitoring" / "grafana" / "provisioning" / "datasources"
    example = yaml.safe_load((folder / "tempo.yaml.example").read_text())
    (tempo,) = example["datasources"]
    assert tempo["type"] == "tempo" and tempo["uid"]
    provisioned = [yaml.safe_load(p.read_text()) for p in folder.iterdir() if p.suffix in (".yaml", ".yml")]
    types = {d["type"] for f in provisioned for d in f["datasources"]}
    assert types == {"prometheus"}, "Grafana reads *.yaml only: the example stays inert until copied"
