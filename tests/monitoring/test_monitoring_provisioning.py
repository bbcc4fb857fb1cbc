"""Grafana provisioning: the files sit in the subfolders Grafana reads, the
datasource has the fixed uid the dashboards expect, and the dashboard provider
reads the directory the compose file mounts the generated JSON at."""
from pathlib import PurePosixPath

from harness.monitoring import DASHBOARD_DIR, PROVISIONING, REPO, committed_dashboards, load_yaml

# (host path relative to the repo, container path): what compose.yaml must
# mount into the grafana service. The lead's compose test asserts the same pairs.
GRAFANA_MOUNTS = (
    ("monitoring/grafana/provisioning", "/etc/grafana/provisioning"),
    ("monitoring/grafana/dashboards", "/var/lib/grafana/dashboards"),
)
DATASOURCES = PROVISIONING / "datasources" / "prometheus.yaml"
DASHBOARD_PROVIDER = PROVISIONING / "dashboards" / "sublarr.yaml"


def container_path(host_path) -> PurePosixPath:
    """Where a file of this repo appears inside the grafana container."""
    relative = PurePosixPath(host_path.relative_to(REPO).as_posix())
    for source, target in GRAFANA_MOUNTS:
        if relative == PurePosixPath(source) or PurePosixPath(source) in relative.parents:
            return PurePosixPath(target) / relative.relative_to(source)
    raise AssertionError(f"{relative} is not under any grafana mount")


def test_provisioning_files_are_where_grafana_reads_them():
    # Grafana reads <provisioning>/datasources/*.yaml and <provisioning>/dashboards/*.yaml only.
    assert container_path(DATASOURCES).parent == PurePosixPath("/etc/grafana/provisioning/datasources")
    assert container_path(DASHBOARD_PROVIDER).parent == PurePosixPath("/etc/grafana/provisioning/dashboards")
    stray = [p for p in PROVISIONING.rglob("*") if p.is_file() and p.parent.name not in ("datasources", "dashboards")]
    assert stray == []


def test_datasource_has_the_fixed_uid():
    config = load_yaml(DATASOURCES)
    assert config["apiVersion"] == 1
    (datasource,) = config["datasources"]
    assert datasource["uid"] == "sublarr-prometheus"
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert datasource["isDefault"] is True
    # The dashboards' datasource variable defaults to exactly this uid.
    for uid, dashboard in committed_dashboards().items():
        variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "datasource")
        assert variable["current"]["value"] == datasource["uid"], uid


def test_dashboard_provider_reads_the_mounted_dashboards():
    config = load_yaml(DASHBOARD_PROVIDER)
    assert config["apiVersion"] == 1
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == "Sublarr"
    path = PurePosixPath(provider["options"]["path"])
    assert path == PurePosixPath("/var/lib/grafana/dashboards")
    assert path == container_path(DASHBOARD_DIR), "the provider must read where compose mounts the JSON"
    assert all(container_path(f).parent == path for f in DASHBOARD_DIR.glob("*.json"))
