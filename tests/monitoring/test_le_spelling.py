"""No rule, rule test or dashboard depends on how `le` is spelled.

Prometheus 3 stores scraped classic-histogram bounds in float form
(`le="1.0"`), Prometheus 2 and the OTLP receiver of Prometheus 3 as written
(`le="1"`), VictoriaMetrics as written too. PromQL that matches `le` by value
works on one of them only; `sum by (le)` and `histogram_quantile` work on all
(histogram_quantile merges buckets whose bounds are equal as numbers).
"""
import math
import re
import shutil
import subprocess

import yaml

from harness.monitoring import RULE_TESTS, RULES_FILE, committed_dashboards, rule_groups
from telemetry.dashboard_json import panel_queries

# A matcher on le or quantile with any operator: le="1", le=~"1(\.0)?", le!="+Inf".
LE_MATCHER = re.compile(r"""\b(le|quantile)\s*(=~|!~|!=|=)\s*["'`]""")
SERIES_LE = re.compile(r'\ble="([^"]+)"')


def expressions():
    """(where, PromQL) of every rule and dashboard panel target."""
    out = [(f"rule {rule.get('record') or rule.get('alert')}", rule["expr"])
           for group in rule_groups() for rule in group["rules"]]
    out += [(f"{uid} / {title} / {ref}", expr)
            for uid, data in committed_dashboards().items() for title, ref, expr in panel_queries(data)]
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            out += [(f"{path.name} promql_expr_test", case["expr"]) for case in test.get("promql_expr_test", [])]
    return out


def test_the_matcher_finds_what_it_must():
    assert LE_MATCHER.search('rate(x_bucket{le="1"}[5m])')
    assert LE_MATCHER.search("x_bucket{job='a', le =~ '1(.0)?'}")
    assert not LE_MATCHER.search('histogram_quantile(0.9, sum by (le) (rate(x_bucket{job="a"}[5m])))')


def test_no_expression_matches_le_or_quantile_by_value():
    offenders = [f"{where}: {expr}" for where, expr in expressions() if LE_MATCHER.search(expr)]
    assert offenders == []


def other_spelling(value: str) -> str:
    """'1' <-> '1.0' (Prometheus 3's float form); '+Inf' and non-integral bounds stay."""
    number = float(value)
    if math.isinf(number) or not number.is_integer():
        return value
    return str(int(number)) if "." in value else f"{int(number)}.0"


def test_other_spelling():
    assert [other_spelling(v) for v in ("1", "1.0", "10", "0.25", "+Inf")] == ["1.0", "1", "10.0", "0.25", "+Inf"]


def test_rule_tests_pass_with_the_other_le_spelling(tmp_path, promtool_binary):
    """The shipped rule tests, with every integral `le` of their input series
    respelled ('1' -> '1.0' and back), still pass: the rules compute the same
    whichever way the store spelled the bounds. (The copy keeps the layout
    the tests' `rule_files: [../rules/...]` expects.)"""
    (tmp_path / "rules").mkdir()
    shutil.copy(RULES_FILE, tmp_path / "rules" / RULES_FILE.name)
    (tmp_path / "tests").mkdir()
    respelled = 0
    for path in RULE_TESTS:
        text = path.read_text()
        new = SERIES_LE.sub(lambda m: f'le="{other_spelling(m.group(1))}"', text)
        respelled += sum(a != b for a, b in zip(SERIES_LE.findall(text), SERIES_LE.findall(new)))
        (tmp_path / "tests" / path.name).write_text(new)
    assert respelled > 0, "the rule tests have no integral le bound to respell"
    tests = sorted((tmp_path / "tests").glob("*.yml"))
    result = subprocess.run([promtool_binary, "test", "rules", *map(str, tests)], capture_output=True, text=True,
                            timeout=120, cwd="/")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(tests)

