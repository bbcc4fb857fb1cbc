"""compose.yaml, compose.direct.yaml and compose.otlp.yaml: valid, pinned, wired to the monitoring files."""
import json
import os
import re
import subprocess

import pytest
import yaml

from harness.compose import compose_binary
from harness.support import REPO, missing

COMPOSE_FILES = ["compose.yaml", "compose.direct.yaml", "compose.otlp.yaml"]


def load(name):
    return yaml.safe_load((REPO / name).read_text())


def test_collector_image_matches_the_version_the_tests_build():
    manifest = yaml.safe_load((REPO / "otel-collector" / "builder-config.yaml").read_text())
    version = manifest["dist"]["version"]
    image = load("compose.yaml")["services"]["collector"]["image"]
    assert image == f"otel/opentelemetry-collector-contrib:{version}"


def built_prometheus_release():
    """scripts/build-prometheus pins module v0.3XX.Y, which is Prometheus v3.XX.Y."""
    text = (REPO / "scripts" / "build-prometheus").read_text()
    minor, patch = re.search(r"^VERSION=v0\.3(\d\d)\.(\d+)$", text, re.M).groups()
    return f"v3.{int(minor)}.{patch}"


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_prometheus_image_is_the_release_the_tests_build(name):
    image = load(name)["services"]["prometheus"]["image"]
    assert image == f"prom/prometheus:{built_prometheus_release()}"


def test_otlp_stack_pushes_into_prometheus_without_a_collector():
    services = load("compose.otlp.yaml")["services"]
    assert "collector" not in services
    assert "--web.enable-otlp-receiver" in services["prometheus"]["command"]
    for name in ("app", "worker"):
        env = services[name]["environment"]
        assert env["OTEL_METRICS_EXPORTER"] == "otlp"
        assert env["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"] == "http://prometheus:9090/api/v1/otlp/v1/metrics"
    assert services["app"]["command"][:3] == ["gunicorn", "--workers", "2"]


def test_otlp_prometheus_config_is_valid_for_prometheus_3():
    from harness.prometheus_server import PROMETHEUS3, find_promtool
    from harness.servers import ServerUnavailable
    try:
        promtool = find_promtool(PROMETHEUS3)
    except ServerUnavailable as exc:
        missing(str(exc))
    result = subprocess.run([promtool, "check", "config", str(REPO / "monitoring/prometheus/prometheus.otlp.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_grafana_and_prometheus_mounts_match_the_provisioning(name):
    services = load(name)["services"]
    grafana = services["grafana"]["volumes"]
    assert "./monitoring/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana
    assert "./monitoring/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana
    provider = yaml.safe_load((REPO / "monitoring/grafana/provisioning/dashboards/sublarr.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (REPO / "monitoring/grafana/dashboards" / os.path.basename(home)).exists()
    prometheus = services["prometheus"]
    assert "./monitoring/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    config = next(a.split("=", 1)[1] for a in prometheus["command"] if a.startswith("--config.file="))
    assert (REPO / "monitoring/prometheus" / os.path.basename(config)).exists()


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_no_secrets_in_compose_files_and_hardened_services(name):
    text = (REPO / name).read_text().lower()
    for word in ("password:", "token:", "secret:"):
        for line in text.splitlines():
            if word in line and "${" not in line and not line.strip().startswith("#"):
                pytest.fail(f"{name}: literal secret-looking line: {line.strip()}")
    for service_name, service in load(name)["services"].items():
        assert service.get("read_only") is True, f"{name}: {service_name} is not read-only"


def test_direct_prometheus_config_is_valid(promtool_binary):
    result = subprocess.run([promtool_binary, "check", "config", str(REPO / "monitoring/prometheus/prometheus.direct.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_a_real_compose_implementation_accepts_the_file(name, tmp_path):
    binary = compose_binary()
    env = dict(os.environ, DOCKER_CONFIG=str(tmp_path))
    result = subprocess.run([binary, "-f", str(REPO / name), "config", "--quiet"], cwd=REPO,
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    services = subprocess.run([binary, "-f", str(REPO / name), "config", "--services"], cwd=REPO,
                              capture_output=True, text=True, timeout=120, env=env)
    assert set(services.stdout.split()) == set(load(name)["services"])


def test_collector_binds_loopback_unless_compose_opens_it():
    """Outside a container the shipped config listens on 127.0.0.1 only; compose opens every listener."""
    import re

    config = (REPO / "otel-collector" / "config.yaml").read_text()
    listeners = dict(re.findall(r"\$\{env:(\w+(?:ENDPOINT|_HOST)):-([^}]*)\}", config))
    assert {"OTLP_GRPC_ENDPOINT", "OTLP_HTTP_ENDPOINT", "PROMETHEUS_EXPORTER_ENDPOINT",
            "HEALTH_CHECK_ENDPOINT", "OTELCOL_METRICS_HOST"} <= set(listeners)
    assert "0.0.0.0" not in config.split("\nextensions:", 1)[1]
    for name, default in listeners.items():
        assert default.split(":")[0] in ("127.0.0.1", "localhost"), (name, default)
    environment = load("compose.yaml")["services"]["collector"]["environment"]
    for name in listeners:
        assert str(environment.get(name, "")).startswith("0.0.0.0"), f"compose.yaml leaves {name} on loopback"


@pytest.mark.parametrize("published, expected", [(None, "127.0.0.1"), ("0.0.0.0", "0.0.0.0")])
def test_the_collector_is_published_on_loopback_unless_opened(published, expected, tmp_path):
    """Unauthenticated OTLP receivers reach the host's loopback only, unless OTLP_PUBLISH_ADDRESS opens them."""
    env = {key: value for key, value in os.environ.items() if key != "OTLP_PUBLISH_ADDRESS"}
    env["DOCKER_CONFIG"] = str(tmp_path)
    if published:
        env["OTLP_PUBLISH_ADDRESS"] = published
    result = subprocess.run([compose_binary(), "-f", str(REPO / "compose.yaml"), "config", "--format", "json"],
                            cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    ports = json.loads(result.stdout)["services"]["collector"]["ports"]
    assert sorted((p["host_ip"], p["published"], p["target"]) for p in ports) == [
        (expected, "4317", 4317), (expected, "4318", 4318)]
