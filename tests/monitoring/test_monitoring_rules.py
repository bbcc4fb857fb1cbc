"""Prometheus config and rules: promtool accepts them, every alert is complete
(for, severity, summary, description, runbook anchor) and unit-tested both
firing and not firing, every recording rule is unit-tested. The promtool
checks run with Debian's promtool (2.42) and Prometheus 3's."""
import re
import subprocess

import pytest

from harness.monitoring import (PROMETHEUS_CONFIG, PROMETHEUS_DIR, RULE_TESTS, RULES_FILE, alerting_rules,
                                load_yaml, recording_rules, runbook_anchors)

SEVERITIES = {"critical", "warning", "info"}
EXPECTED_ALERTS = {"SublarrTargetDown", "SublarrHighHTTPErrorRate", "SublarrHighHTTPLatency",
                   "SublarrQueueNotDraining", "SublarrFailedJobsRising", "SublarrCircuitBreakerOpen",
                   "SublarrAllProvidersOpen", "SublarrRedisDisconnected", "SublarrTelemetrySourceDown"}


@pytest.fixture
def promtool(promtool_binary):
    def run(*args: str) -> subprocess.CompletedProcess:
        # From a neutral directory: relative paths must resolve against the files
        # that name them (rule_files against prometheus.yml or the test file).
        return subprocess.run([promtool_binary, *args], capture_output=True, text=True, timeout=120, cwd="/")
    return run


def test_promtool_check_config(promtool):
    # rule_files are resolved relative to the config file, so this also
    # proves rules/sublarr.rules.yml is found from where prometheus.yml is.
    result = promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_promtool_check_rules(promtool):
    result = promtool("check", "rules", str(RULES_FILE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules(promtool):
    assert RULE_TESTS, "no rule tests in monitoring/prometheus/tests"
    result = promtool("test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_scrape_config():
    config = load_yaml(PROMETHEUS_CONFIG)
    assert config["global"]["scrape_interval"] == "15s"
    assert config["rule_files"] == ["rules/sublarr.rules.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"sublarr", "otel-collector"}
    assert jobs["sublarr"]["static_configs"] == [{"targets": ["app:8000"]}]
    assert jobs["sublarr"].get("metrics_path", "/metrics") == "/metrics"
    assert not jobs["sublarr"].get("honor_labels", False), "the app's own job/instance come from the scrape"
    assert jobs["otel-collector"]["static_configs"] == [{"targets": ["collector:8889"]}]
    assert jobs["otel-collector"]["honor_labels"] is True, "keep the pushed job (service.name) and instance"


def test_alerts_are_complete():
    alerts = {rule["alert"]: rule for rule in alerting_rules()}
    assert set(alerts) == EXPECTED_ALERTS
    anchors = runbook_anchors()
    for name, rule in alerts.items():
        assert rule.get("for"), f"{name}: no `for`"
        assert rule.get("labels", {}).get("severity") in SEVERITIES, name
        annotations = rule.get("annotations", {})
        assert set(annotations) >= {"summary", "description", "runbook_url"}, name
        assert annotations["summary"].strip() and annotations["description"].strip(), name
        url = annotations["runbook_url"]
        assert url.startswith("monitoring/runbook.md#"), f"{name}: {url}"
        anchor = url.split("#", 1)[1]
        assert anchor == name.lower(), f"{name}: anchor {anchor}"
        assert anchor in anchors, f"{name}: monitoring/runbook.md has no section #{anchor}"


def test_runbook_sections_explain_meaning_causes_and_checks():
    text = (PROMETHEUS_DIR.parent / "runbook.md").read_text()
    sections = text.split("\n## ")[1:]
    assert {s.splitlines()[0].strip() for s in sections} == EXPECTED_ALERTS
    for section in sections:
        for part in ("**Meaning.**", "**Likely causes.**", "**What to check.**"):
            assert part in section, f"{section.splitlines()[0]}: {part} missing"


def _rule_tests():
    return [(path, test) for path in RULE_TESTS for test in load_yaml(path)["tests"]]


def test_every_alert_is_tested_firing_and_not_firing():
    firing, quiet = set(), set()
    for _, test in _rule_tests():
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert EXPECTED_ALERTS - firing == set(), "alerts never expected to fire"
    assert EXPECTED_ALERTS - quiet == set(), "alerts never expected to stay quiet"


def test_every_recording_rule_is_tested():
    tested = set()
    records = {rule["record"] for rule in recording_rules()}
    for _, test in _rule_tests():
        for case in test.get("promql_expr_test", []):
            tested |= {record for record in records if record in case["expr"]}
    assert records - tested == set()


@pytest.mark.parametrize("path", RULE_TESTS, ids=lambda p: p.name)
def test_rule_tests_load_the_shipped_rules(path):
    assert load_yaml(path)["rule_files"] == ["../rules/sublarr.rules.yml"]


def test_target_down_covers_every_scrape_job():
    expr = next(r["expr"] for r in alerting_rules() if r["alert"] == "SublarrTargetDown")
    pattern = re.search(r'up\{job=~"([^"]+)"\}', expr).group(1)
    for job in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]:
        assert re.fullmatch(pattern, job["job_name"]), f"SublarrTargetDown misses scrape job {job['job_name']}"
