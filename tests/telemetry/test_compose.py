"""compose.yaml and compose.direct.yaml: valid, pinned, wired to the monitoring files."""
import os
import shutil
import subprocess

import pytest
import yaml

from support import REPO, missing, require_binary

COMPOSE_FILES = ["compose.yaml", "compose.direct.yaml"]


def load(name):
    return yaml.safe_load((REPO / name).read_text())


def test_collector_image_matches_the_version_the_tests_build():
    manifest = yaml.safe_load((REPO / "otel-collector" / "builder-config.yaml").read_text())
    version = manifest["dist"]["version"]
    image = load("compose.yaml")["services"]["collector"]["image"]
    assert image == f"otel/opentelemetry-collector-contrib:{version}"


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
    binary = os.environ.get("SUBLARR_DOCKER_COMPOSE") or shutil.which("docker-compose")
    cached = subprocess.run([str(REPO / "scripts" / "build-compose"), "--print-path"], capture_output=True, text=True)
    if not binary and cached.returncode == 0:
        binary = cached.stdout.strip()
    if not binary:
        missing("docker compose is not built (scripts/build-compose)")
    env = dict(os.environ, DOCKER_CONFIG=str(tmp_path))
    result = subprocess.run([binary, "-f", str(REPO / name), "config", "--quiet"], cwd=REPO,
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    services = subprocess.run([binary, "-f", str(REPO / name), "config", "--services"], cwd=REPO,
                              capture_output=True, text=True, timeout=120, env=env)
    assert set(services.stdout.split()) == set(load(name)["services"])
