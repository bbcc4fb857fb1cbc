"""Every metric name a dashboard panel, a dashboard variable or a rule selects
is a catalog series (or a recording rule the rules generator writes, or
Prometheus's own `up`), and every catalog family is on some dashboard. Rules
are read from the generator (monitoring/sublarr_rules), which the committed
YAML equals (tests/monitoring/test_rules_generator.py)."""
import re

import pytest

from harness.monitoring import (PROMETHEUS_SERIES, committed_dashboards, family_of, label_values_metric,
                                metric_name_tokens, metric_names)
from sublarr_rules import build
from telemetry import catalog
from telemetry.dashboard_json import panel_queries, variable_queries


def dashboard_expressions():
    """(where, expr) for every panel target and variable of the committed dashboards."""
    out = []
    for uid, data in committed_dashboards().items():
        out += [(f"{uid} / {title} / {ref}", expr) for title, ref, expr in panel_queries(data)]
        out += [(f"{uid} / variable {name}", label_values_metric(query)) for name, query in variable_queries(data)]
    return out


def generated_rules(key: str) -> list[dict]:
    """The generator's recording rules (``record``) or alerts (``alert``)."""
    return [rule for group in build()["groups"] for rule in group["rules"] if key in rule]


def rule_expressions():
    return ([(f"record {r['record']}", r["expr"]) for r in generated_rules("record")]
            + [(f"alert {r['alert']}", r["expr"]) for r in generated_rules("alert")])


def unknown_names(expressions, allowed_extra=frozenset()):
    problems = []
    for where, expr in expressions:
        names = metric_names(expr)
        if not names:
            problems.append(f"{where}: no metric name found in {expr!r}")
        for name in sorted(names):
            if family_of(name) is None and name not in PROMETHEUS_SERIES and name not in allowed_extra:
                problems.append(f"{where}: {name} is not a catalog series")
    return problems


def test_dashboard_queries_name_catalog_series():
    records = {r["record"] for r in generated_rules("record")}
    assert unknown_names(dashboard_expressions(), records) == []


def test_rule_expressions_name_catalog_series():
    records = {r["record"] for r in generated_rules("record")}
    # Recording rules are built from catalog series only; alerts may use recording rules.
    assert unknown_names([(w, e) for w, e in rule_expressions() if w.startswith("record")]) == []
    assert unknown_names([(w, e) for w, e in rule_expressions() if w.startswith("alert")], records) == []


def test_recording_rule_names_follow_level_metric_operations():
    for rule in generated_rules("record"):
        level, metric, operations = rule["record"].split(":")
        assert level and operations and metric.startswith("sublarr_"), rule["record"]
        # The level names the labels the rule keeps.
        kept = set(level.split("_"))
        by = set().union(*[set(x.replace(" ", "").split(",")) for x in
                          re.findall(r"by \(([^)]*)\)", rule["expr"])]) - {"le"}
        assert kept == by, f"{rule['record']}: level {sorted(kept)} but aggregates by {sorted(by)}"


def test_every_catalog_family_is_on_a_dashboard():
    shown = {family_of(name).name for _, expr in dashboard_expressions() for name in metric_names(expr)
             if family_of(name) is not None}
    missing = [f.name for f in catalog.FAMILIES if f.name not in shown]
    assert missing == [], f"catalog families on no dashboard: {missing}"


def test_histograms_are_read_through_their_buckets():
    """A bare histogram name selects nothing in Prometheus."""
    histograms = {f.name for f in catalog.FAMILIES if f.kind is catalog.Kind.HISTOGRAM}
    for where, expr in dashboard_expressions() + rule_expressions():
        assert not metric_names(expr) & histograms, where


@pytest.mark.parametrize("expr, names", [
    ('histogram_quantile(0.95, sum by (le, endpoint) (rate(sublarr_http_request_duration_seconds_bucket'
     '{job=~"$job", status=~"5.."}[$__rate_interval])))', ["sublarr_http_request_duration_seconds_bucket"]),
    ('sum(max by (provider) (sublarr_circuit_breaker_state{job=~"$job"}) > bool 0)',
     ["sublarr_circuit_breaker_state"]),
    ("job:sublarr_http_requests_5xx:ratio_rate5m > 0.05 and on (job) up == 1",
     ["job:sublarr_http_requests_5xx:ratio_rate5m", "up"]),
    ("(a_total or 0 * b_total) / ignoring(x) group_left c 1e-9", ["a_total", "b_total", "c"]),
    ('max by (job, backend) (min_over_time(sublarr_queue_size[15m])) > 0 and '
     'max by (job, backend) (delta(sublarr_queue_size[15m])) >= 0', ["sublarr_queue_size", "sublarr_queue_size"]),
    ('sum(rate(x_total{a="by (le)", b="1e5"}[5m] offset 1h))', ["x_total"]),
])
def test_metric_name_parser(expr, names):
    assert metric_name_tokens(expr) == names


def test_unknown_names_are_reported():
    problems = unknown_names([("panel", 'sum(rate(sublarr_http_request_total{job=~"$job"}[5m]))'),
                              ("panel", "sublarr_http_request_duration_seconds"),
                              ("panel", "1 + 1")])
    assert problems == ["panel: sublarr_http_request_total is not a catalog series",
                        "panel: sublarr_http_request_duration_seconds is not a catalog series",
                        "panel: no metric name found in '1 + 1'"]
