"""The README agrees with the catalog and with CI."""
import re

from support import REPO
from telemetry import catalog, reference


def test_readme_metric_reference_is_current():
    readme = (REPO / "README.md").read_text()
    assert reference.replace_section(readme, reference.markdown()) == readme, \
        "README metric reference is stale: run `sublarr-telemetry catalog --write-readme`"
    for family in catalog.FAMILIES:
        assert f"`{family.name}`" in readme


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"^(scripts/\w+)", readme, flags=re.M)
    assert commands[:2] == ["scripts/demo", "scripts/test"]
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^scripts/test\b", ci, flags=re.M)


def test_every_settings_variable_is_documented():
    readme = (REPO / "README.md").read_text()
    source = (REPO / "backend" / "telemetry" / "settings.py").read_text()
    for variable in set(re.findall(r'"((?:SUBLARR|OTEL)_[A-Z_]+)"', source)):
        assert f"`{variable}`" in readme, variable


def test_monitoring_guide_reference_and_alert_table_are_current():
    import yaml

    guide = (REPO / "monitoring" / "README.md").read_text()
    assert reference.replace_section(guide, reference.markdown()) == guide, \
        "monitoring/README.md reference is stale: run `sublarr-telemetry catalog --write-readme monitoring/README.md`"
    rules = yaml.safe_load((REPO / "monitoring" / "prometheus" / "rules" / "sublarr.rules.yml").read_text())
    alerts = {r["alert"]: r["labels"]["severity"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    table = dict(re.findall(r"^\| (Sublarr\w+) \| (\w+) \|", guide, flags=re.M))
    assert table == alerts
    runbook = (REPO / "monitoring" / "runbook.md").read_text()
    for alert in alerts:
        assert f"(runbook.md#{alert.lower()})" in guide
        assert re.search(rf"^## {alert}$", runbook, flags=re.M), alert
