"""compose.direct.yaml (no collector): Prometheus scrapes the web app and the RQ
worker, each on the address that process serves its metrics on."""
import yaml

from harness.support import REPO


def load(path):
    return yaml.safe_load((REPO / path).read_text())


def test_direct_prometheus_scrapes_web_and_worker_where_they_serve():
    services = load("compose.direct.yaml")["services"]
    worker_env = services["worker"]["environment"]
    assert services["worker"]["command"] == ["python", "-m", "refapp.worker"]
    assert worker_env["OTEL_METRICS_EXPORTER"] == "prometheus"
    listen_port = worker_env["SUBLARR_METRICS_LISTEN"].rsplit(":", 1)[1]
    assert worker_env["SUBLARR_REDIS_URL"] == services["app"]["environment"]["SUBLARR_REDIS_URL"]
    config = load("monitoring/prometheus/prometheus.direct.yml")
    targets = {job["job_name"]: (job["metrics_path"], job["static_configs"][0]["targets"])
               for job in config["scrape_configs"]}
    assert targets == {"sublarr": ("/metrics", ["app:8000"]),
                       "sublarr-worker": ("/metrics", [f"worker:{listen_port}"])}
