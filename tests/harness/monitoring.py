"""Shared by tests/monitoring: paths, YAML/JSON loading, metric names in PromQL."""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from harness.support import REPO

MONITORING = REPO / "monitoring"
DASHBOARD_DIR = MONITORING / "grafana" / "dashboards"
PROVISIONING = MONITORING / "grafana" / "provisioning"
PROMETHEUS_DIR = MONITORING / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES_FILE = PROMETHEUS_DIR / "rules" / "sublarr.rules.yml"
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
RUNBOOK = MONITORING / "runbook.md"
EXPECTED_UIDS = {"sublarr-overview", "sublarr-database", "sublarr-jobs"}

# Series Prometheus itself creates for every target (not the app's to define).
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped",
                     "scrape_samples_post_metric_relabeling", "scrape_series_added"}


def load_yaml(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def committed_dashboards() -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in sorted(DASHBOARD_DIR.glob("*.json"))}


def rule_groups() -> list[dict]:
    return load_yaml(RULES_FILE)["groups"]


def recording_rules() -> list[dict]:
    return [rule for group in rule_groups() for rule in group["rules"] if "record" in rule]


def alerting_rules() -> list[dict]:
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


# --- PromQL ---------------------------------------------------------------------

_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
             "unless", "offset", "inf", "nan"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_DURATION = re.compile(r"(?<![\w:.])(?:\d+(?:ms|[smhdwy]))+(?![\w:])")
_NUMBER = re.compile(r"(?<![\w:.])(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def metric_name_tokens(expr: str) -> list[str]:
    """Every metric name a PromQL expression selects, once per occurrence.

    Strings, label matchers, range and subquery brackets, grouping label
    lists and numbers are removed first; what is left and is not followed by
    ``(`` (a function or aggregation) nor a keyword is a metric name.
    """
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    text = _DURATION.sub(" ", text)  # offset 1h
    text = _NUMBER.sub(" ", text)
    names = []
    for match in _IDENT.finditer(text):
        name = match.group(0)
        if name.lower() in _KEYWORDS or text[match.end():].lstrip().startswith("("):
            continue
        names.append(name)
    return names


def metric_names(expr: str) -> set[str]:
    return set(metric_name_tokens(expr))


def label_values_metric(query: str) -> str:
    """The series selector of a Grafana ``label_values(selector, label)`` query."""
    match = re.fullmatch(r"\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", query)
    assert match, f"not a label_values(selector, label) query: {query!r}"
    return match.group(1)


def family_of(sample_name: str):
    """The catalog family exposing ``sample_name``, or None.

    Histograms expose only ``_bucket``/``_sum``/``_count`` samples: their bare
    name selects nothing in Prometheus and does not count.
    """
    from telemetry import catalog
    for family in catalog.FAMILIES:
        if sample_name in family.sample_names():
            return family
    return None


def github_anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to dashes."""
    slug = heading.strip().lower()
    slug = re.sub(r"[^\w\- ]", "", slug)
    return slug.replace(" ", "-")


def runbook_anchors() -> set[str]:
    return {github_anchor(line.lstrip("#")) for line in RUNBOOK.read_text(encoding="utf-8").splitlines()
            if re.match(r"#{1,6} ", line)}
