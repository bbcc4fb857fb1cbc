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
import math
import os
import subprocess
import sys
import threading
import time

import pytest

from harness.monitoring import PROMETHEUS_CONFIG, PROMETHEUS_DIR, committed_dashboards, load_yaml, recording_rules
from harness.support import REPO, free_port, wait_for
from telemetry.dashboard_json import panel_queries, variable_queries

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SCRAPE_INTERVAL = "1s"
# What Grafana substitutes with "All" selected (allValue .*), the default
# time range (now-1h) and $__rate_interval >= 4 scrape intervals.
GRAFANA_BUILTINS = {"$__rate_interval": "15s", "$__range": "1h", "$instance": ".*", "$job": ".*"}
MIN_TRAFFIC = 15.0  # seconds of traffic before the first evaluation: one whole $__rate_interval
DEADLINE = 60.0  # seconds of traffic before a still-empty panel fails the test
ZERO_IS_HEALTHY = {"State source errors"}  # panel titles whose rates are 0 on a healthy stack

WORKER_JOB = "sublarr-worker"
CAPPED_JOB = "sublarr-web-capped"


def grafana_expr(expr: str) -> str:
    for variable in sorted(GRAFANA_BUILTINS, key=len, reverse=True):
        expr = expr.replace(variable, GRAFANA_BUILTINS[variable])
    assert "$" not in expr, f"a template variable the test does not know: {expr}"
    return expr


def prometheus_config(app_target: str, collector_target: str) -> dict:
    """The shipped prometheus.yml with local targets and 1 s intervals."""
    config = copy.deepcopy(load_yaml(PROMETHEUS_CONFIG))
    config["global"].update(scrape_interval=SCRAPE_INTERVAL, scrape_timeout=SCRAPE_INTERVAL,
                            evaluation_interval=SCRAPE_INTERVAL)
    targets = {"sublarr": app_target, "otel-collector": collector_target}
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    return config


def no_data_problem(prometheus, expr: str, moving: bool = False) -> str | None:
    """None when the query returns at least one number (a positive one if
    ``moving``), else what it returned."""
    result = prometheus.query(expr)
    if not result:
        return "no data"
    values = [float(series["value"][1]) for series in result]
    if all(math.isnan(v) for v in values):
        return f"only NaN ({len(values)} series)"
    if moving and not any(v > 0 for v in values):
        return f"only zeros ({len(values)} series): the traffic did not move it"
    return None


def await_data(store, pending: dict, started: float, deadline: float, procs, worker: str) -> None:
    """Evaluate ``pending`` ({where: (expr, must move)}) on ``store`` every 2 s, once
    MIN_TRAFFIC seconds of traffic have passed, until all have data or ``deadline``
    seconds of traffic are over; then fail naming each query still without data."""
    time.sleep(max(0.0, MIN_TRAFFIC - (time.monotonic() - started)))
    problems = {}
    while pending and time.monotonic() - started < deadline:
        procs.check_alive()
        problems = {where: problem for where, (expr, moving) in pending.items()
                    if (problem := no_data_problem(store, expr, moving))}
        pending = {where: pending[where] for where in problems}
        if pending:
            time.sleep(2)
    assert not pending, (f"queries without data after {deadline:.0f}s of traffic:\n"
                         + "\n".join(f"  {where}: {problems[where]}\n    {pending[where][0]}"
                                     for where in sorted(pending))
                         + "\nworker log tail:\n" + procs.tail(worker, 1500))


def must_move(title: str, expr: str) -> bool:
    """Rates and increases must be positive under traffic, except where 0 is health."""
    return ("rate(" in expr or "increase(" in expr) and title not in ZERO_IS_HEALTHY


class Processes:
    """Subprocesses of this test, each with its own log; stopped in reverse order."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.procs = []

    def start(self, name, args, env):
        log = open(self.log_dir / f"{name}.log", "w")
        proc = subprocess.Popen([sys.executable, *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                                cwd=self.log_dir)
        self.procs.append((name, proc, log))
        return proc

    def check_alive(self):
        for name, proc, _ in self.procs:
            assert proc.poll() is None, f"{name} exited with {proc.returncode}:\n{self.tail(name)}"

    def tail(self, name, chars=3000):
        return (self.log_dir / f"{name}.log").read_text(errors="replace")[-chars:]

    def stop(self):
        for name, proc, log in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            log.close()


def _healthy(url):
    import requests
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_every_panel_and_recording_rule_has_data(tmp_path, postgres_url, redis_url, fresh_otel_collector,
                                                 prometheus_factory):
    from refapp.traffic import TrafficGenerator

    collector = fresh_otel_collector
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SUBLARR_"))}
    base_env.update(
        PYTHONPATH=str(REPO / "backend"), SUBLARR_DATABASE_URL=postgres_url, SUBLARR_REDIS_URL=redis_url,
        SUBLARR_DATA_DIR=str(tmp_path), SUBLARR_SIM_LATENCY_SCALE="0.1", SUBLARR_SIM_FAILURE_RATE="0.2",
        SUBLARR_SIM_SEED="7", SUBLARR_HOST="127.0.0.1",
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
                wait_for(lambda: _healthy(f"http://127.0.0.1:{port}/api/v1/health"), timeout=30,
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
