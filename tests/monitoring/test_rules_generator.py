"""The Prometheus rules are generated from monitoring/sublarr_rules: the committed
YAML is the generator's output (drift), reads back as the rules' data, and the
generator's PromQL helpers refuse a series of the wrong kind or outside the catalog."""
import re
import subprocess

import pytest
import yaml

from harness.monitoring import RULES_FILE
from harness.support import REPO
from sublarr_rules import GROUPS, build, promql, render
from sublarr_rules.model import Alert, Group, Record
from sublarr_rules.rules_file import HEADER, WIDTH, text

REGENERATE = "scripts/rules"


def test_committed_rules_are_the_generators_output_drift():
    assert RULES_FILE.read_text(encoding="utf-8") == render(), \
        f"monitoring/prometheus/rules/sublarr.rules.yml is out of date; regenerate with: {REGENERATE}"


def test_check_cli_names_a_missing_or_stale_rules_file_drift(tmp_path):
    out = tmp_path / "rules" / "sublarr.rules.yml"
    run = lambda *args: subprocess.run([str(REPO / "scripts" / "rules"), "--out", str(out), *args],
                                       capture_output=True, text=True, timeout=120)
    first = run("--check")
    assert first.returncode == 1 and f"{out}: missing\nregenerate with: scripts/rules\n" == first.stderr
    assert not out.exists()
    written = run()
    assert written.returncode == 0 and written.stdout == f"wrote {out}\n", written.stderr
    assert out.read_text() == RULES_FILE.read_text()
    assert run("--check").returncode == 0
    assert run().stdout == "", "an up-to-date file is not rewritten"
    out.write_text(out.read_text().replace("for: 2m", "for: 3m", 1))
    stale = run("--check")
    assert stale.returncode == 1 and f"{out}: differs from the generator's output" in stale.stderr


def test_the_yaml_reads_back_as_the_rules_data_and_keeps_the_header():
    rendered = render()
    assert rendered.startswith(HEADER) and rendered.endswith("\n")
    assert yaml.safe_load(rendered) == build()
    assert [group["name"] for group in build()["groups"]] == ["sublarr.recording", "sublarr.alerts"]


def test_descriptions_fold_between_templates_within_the_width():
    description_lines = []
    for block in re.findall(r"description: >-\n((?: {12}.*\n)+)", render()):
        description_lines += block.splitlines()
    assert len(description_lines) > len([r for g in GROUPS for r in g.rules if isinstance(r, Alert)])
    for line in description_lines:
        assert line.count("{{") == line.count("}}"), f"a template is split: {line!r}"
        assert len(line) <= WIDTH or " " not in line.strip(), line


def test_alerts_read_recording_rules_the_generator_writes():
    records = {rule.record for group in GROUPS for rule in group.rules if isinstance(rule, Record)}
    read = {name for group in GROUPS for rule in group.rules if isinstance(rule, Alert)
            for name in re.findall(r"\b\w+:\w+:\w+\b", rule.expr)}
    assert read and read <= records, read - records


def test_values_that_cannot_keep_their_style_are_refused():
    def rules_with(**fields):
        alert = dict(name="A", expr="up == 0", for_="1m", severity="info", summary="s", description="d")
        return [Group("g", (Alert(**{**alert, **fields}),))]

    with pytest.raises(ValueError, match="single-spaced"):
        text(rules_with(description="two  spaces"))
    with pytest.raises(ValueError, match="single-spaced"):
        text(rules_with(description="two\nlines"))
    with pytest.raises(ValueError, match="one newline"):
        text(rules_with(expr="up\n== 0"))
    odd = text(rules_with(summary='say "#" {{ $labels.job }}: yes', expr="a: b # c"))
    assert yaml.safe_load(odd)["groups"][0]["rules"][0]["expr"] == "a: b # c"


def test_helpers_take_only_catalog_series_of_the_right_kind():
    with pytest.raises(KeyError, match="sublarr_http_request_total"):
        promql.family("sublarr_http_request_total")
    counter = promql.family("sublarr_http_requests_total")
    histogram = promql.family("sublarr_http_request_duration_seconds")
    per_process_gauge = promql.family("sublarr_circuit_breaker_state")
    shared_gauge = promql.family("sublarr_job_queue_size")
    with pytest.raises(ValueError, match="is a counter, not a histogram"):
        promql.quantile(0.5, counter, promql.JOB)
    with pytest.raises(ValueError, match="is a histogram, not a counter"):
        promql.rate(histogram)
    with pytest.raises(ValueError, match="is a counter, not a gauge"):
        promql.gauge(counter)
    with pytest.raises(ValueError, match="not shared state"):
        promql.one_reading(per_process_gauge, promql.JOB, promql.gauge(per_process_gauge))
    assert (promql.one_reading(shared_gauge, promql.JOB, promql.gauge(shared_gauge, "delta", "1h"))
            == "max by (job) (delta(sublarr_job_queue_size[1h]))")
    assert (promql.quantile(0.9, histogram, ("job",))
            == "histogram_quantile(0.9, sum by (job, le) (rate(sublarr_http_request_duration_seconds_bucket[5m])))")
