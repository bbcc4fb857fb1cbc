"""End to end: a real Prometheus, configured from monitoring/prometheus
(prometheus.yml's scrape jobs and the shipped rules, only targets and
intervals changed), scrapes the reference app over HTTP and a real collector
that RQ workers and a second web process push to; then every target of every
dashboard panel, evaluated as Grafana would send it with "All" selected, must
return data (a number, not only NaN; rates and increases must also be
positive, i.e. the traffic really moved them, except where 0 is the healthy
value), and every recording rule must produce a series.

The stack: PostgreSQL (so the pool families exist), Redis (cache and RQ),
`python -m refapp` scraped directly (job `sublarr`), `python -m refapp.worker`
pushing OTLP (job `sublarr-worker`), and a second `python -m refapp` pushing
OTLP with SUBLARR_METRICS_MAX_SERIES=10 (job `sublarr-web-capped`), whose
HTTP families overflow their cap at once, so the overflow self-metric has
data too (it is absent until a family's first fold). Traffic comes from
refapp.traffic over real HTTP.
"""
import copy
import threading
import time

import pytest

from harness.monitoring import PROMETHEUS_CONFIG, PROMETHEUS_DIR, committed_dashboards, load_yaml, recording_rules
from harness.panel_data import await_data, grafana_expr, must_move
from harness.net import answers_ok
from harness.processes import Processes, refapp_env
from harness.support import free_port, wait_for
from telemetry.dashboard_json import panel_queries, variable_queries

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SCRAPE_INTERVAL = "1s"
DEADLINE = 60.0  # seconds of traffic before a still-empty panel fails the test

WORKER_JOB = "sublarr-worker"
CAPPED_JOB = "sublarr-web-capped"


def prometheus_config(app_target: str, collector_target: str) -> dict:
    """The shipped prometheus.yml with local targets and 1 s intervals."""
    config = copy.deepcopy(load_yaml(PROMETHEUS_CONFIG))
    config["global"].update(scrape_interval=SCRAPE_INTERVAL, scrape_timeout=SCRAPE_INTERVAL,
                            evaluation_interval=SCRAPE_INTERVAL)
    targets = {"sublarr": app_target, "otel-collector": collector_target}
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    return config


def test_every_panel_and_recording_rule_has_data(tmp_path, postgres_url, redis_url, fresh_otel_collector,
                                                 prometheus_factory):
    from refapp.traffic import TrafficGenerator

    collector = fresh_otel_collector
    base_env = refapp_env(tmp_path, postgres_url, redis_url,
                          SUBLARR_METRICS_PATH="/metrics")  # beside the app's own /api/v1/metrics, as Sublarr's
    push = dict(OTEL_METRICS_EXPORTER="otlp", OTEL_METRIC_EXPORT_INTERVAL="1000",
                OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=collector.otlp_http_endpoint + "/v1/metrics")
    app_port, capped_port = free_port(), free_port()

    procs = Processes(tmp_path)
    stop = threading.Event()
    traffic_threads = []
    try:
        procs.start("app", ["-m", "refapp"], dict(base_env, SUBLARR_PORT=str(app_port),
                                                 OTEL_METRICS_EXPORTER="prometheus"))
        procs.start("worker", ["-m", "refapp.worker"], dict(base_env, **push, OTEL_SERVICE_NAME=WORKER_JOB))
        procs.start("capped", ["-m", "refapp"], dict(base_env, **push, SUBLARR_PORT=str(capped_port),
                                                    OTEL_SERVICE_NAME=CAPPED_JOB,
                                                    SUBLARR_METRICS_MAX_SERIES="10"))
        for name, port in (("app", app_port), ("capped", capped_port)):
            try:
                wait_for(lambda: answers_ok(f"http://127.0.0.1:{port}/api/v1/health"), timeout=30,
                         what=f"{name} to serve")
            except AssertionError:
                procs.check_alive()
                raise

        prometheus = prometheus_factory(
            prometheus_config(f"127.0.0.1:{app_port}", f"127.0.0.1:{collector.port}"),
            rule_files={path: PROMETHEUS_DIR / path for path in load_yaml(PROMETHEUS_CONFIG)["rule_files"]})

        for port, rate, threads in ((app_port, 40, 4), (capped_port, 10, 1)):
            generator = TrafficGenerator(f"http://127.0.0.1:{port}", rate=rate, seed=port, threads=threads)
            thread = threading.Thread(target=generator.run, kwargs={"stop_event": stop}, daemon=True)
            thread.start()
            traffic_threads.append(thread)
        started = time.monotonic()

        def targets_up():
            targets = prometheus.active_targets()
            return len(targets) == 2 and all(t["health"] == "up" for t in targets)
        wait_for(targets_up, timeout=20, interval=0.5, what="both scrape targets up")

        # Each query must show data (and movement, for rates) at some
        # evaluation before the deadline; one is retried while it does not.
        pending = {f"{uid} / {title} / {ref}": (grafana_expr(expr), must_move(title, expr))
                   for uid, data in committed_dashboards().items() for title, ref, expr in panel_queries(data)}
        pending.update({f"record {rule['record']}": (rule["record"], False) for rule in recording_rules()})
        await_data(prometheus, pending, started, DEADLINE, procs, "worker")

        # The template variables list every process kind.
        jobs = set(prometheus.label_values("job", "sublarr_info"))
        assert jobs == {"sublarr", WORKER_JOB, CAPPED_JOB}, jobs
        for uid, data in committed_dashboards().items():
            for name, query in variable_queries(data):
                assert query.startswith("label_values(sublarr_info")
                selector = grafana_expr(query[len("label_values("):query.rindex(",")])
                assert prometheus.label_values(name, selector), f"{uid}: variable {name} has no options"

        # honor_labels kept the pushed job/instance: nothing sublarr_* is filed
        # under the collector's own target labels.
        assert prometheus.query('count({__name__=~"sublarr_.+", job="otel-collector"})') == []
        assert len(prometheus.query(f'sublarr_info{{job="{WORKER_JOB}"}}')) == 1
        # The capped process really folded, and the catalog's other processes did not.
        overflow = prometheus.query("sublarr_telemetry_series_overflow_total > 0")
        assert {s["metric"]["job"] for s in overflow} == {CAPPED_JOB}, overflow

        # Every rule evaluates without error.
        broken = {rule["name"]: rule.get("lastError") for rule in prometheus.rules() if rule["health"] != "ok"}
        assert broken == {}
    finally:
        stop.set()
        for thread in traffic_threads:
            thread.join(15)
        procs.stop()
