"""The push-only stack of the OTLP end-to-end tests, and the panel check they share.

Every process pushes OTLP metrics to one endpoint (Prometheus 3's receiver,
or a collector in front of another store) once a second:

  sublarr             the reference app under gunicorn, 2 workers (--preload)
  sublarr-worker      a forking RQ worker (telemetry.rq_worker.Worker)
  sublarr-web-capped  a second app with SUBLARR_METRICS_MAX_SERIES=10, so the
                      overflow self-metric has data

Traffic comes from refapp.traffic over real HTTP; jobs reach the worker
through Redis, pool families through PostgreSQL.
"""
from __future__ import annotations

import threading
import time

from harness.monitoring import committed_dashboards, metric_names, recording_rules
from harness.panel_data import await_data, grafana_expr, must_move
from harness.net import answers_ok
from harness.processes import Processes, refapp_env
from harness.support import free_port, wait_for
from telemetry.dashboard_json import panel_queries, variable_queries

APP_JOB, WORKER_JOB, CAPPED_JOB = "sublarr", "sublarr-worker", "sublarr-web-capped"
PUSHING_JOBS = (APP_JOB, WORKER_JOB, CAPPED_JOB)
DEADLINE = 75.0  # seconds of traffic before a still-empty panel fails the test


def scrape_only(expr: str) -> bool:
    """Queries of series that only a scrape creates (`up`): empty on a push-only path."""
    return metric_names(expr) <= {"up"}


class OtlpStack:
    """Starts the processes and the traffic; ``stop()`` ends both."""

    def __init__(self, tmp_path, metrics_endpoint: str, postgres_url: str, redis_url: str):
        self.procs = Processes(tmp_path)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.env = refapp_env(tmp_path, postgres_url, redis_url,
                              OTEL_METRICS_EXPORTER="otlp", OTEL_METRIC_EXPORT_INTERVAL="1000",
                              OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=metrics_endpoint)
        self.started = None

    def start(self) -> None:
        app_port, capped_port = free_port(), free_port()
        self.procs.start(APP_JOB, ["-m", "gunicorn", "--preload", "-w", "2", "--threads", "4",
                                   "-b", f"127.0.0.1:{app_port}", "refapp.wsgi:app"],
                         dict(self.env, OTEL_SERVICE_NAME=APP_JOB))
        self.procs.start(WORKER_JOB, ["-m", "refapp.worker"], dict(self.env, OTEL_SERVICE_NAME=WORKER_JOB))
        self.procs.start(CAPPED_JOB, ["-m", "refapp"], dict(self.env, OTEL_SERVICE_NAME=CAPPED_JOB,
                                                           SUBLARR_PORT=str(capped_port),
                                                           SUBLARR_METRICS_MAX_SERIES="10"))
        for name, port in ((APP_JOB, app_port), (CAPPED_JOB, capped_port)):
            try:
                wait_for(lambda: answers_ok(f"http://127.0.0.1:{port}/api/v1/health"), timeout=40,
                         what=f"{name} to serve")
            except AssertionError:
                self.procs.check_alive()
                raise
        from refapp.traffic import TrafficGenerator
        for port, rate, threads in ((app_port, 40, 4), (capped_port, 10, 1)):
            generator = TrafficGenerator(f"http://127.0.0.1:{port}", rate=rate, seed=port, threads=threads)
            thread = threading.Thread(target=generator.run, kwargs={"stop_event": self._stop}, daemon=True)
            thread.start()
            self._threads.append(thread)
        self.started = time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)
        self.procs.stop()


def assert_every_panel_has_data(store, stack: OtlpStack, jobs: str = ".*") -> None:
    """Every dashboard panel query (as Grafana sends it with `$job` = ``jobs``)
    and every recording rule's expression returns data on ``store`` before the
    deadline; rates must move. Scrape-only queries (`up`) are left out: a push
    path has no scrape targets."""
    pending = {}
    for uid, data in committed_dashboards().items():
        for title, ref, expr in panel_queries(data):
            if not scrape_only(expr):
                pending[f"{uid} / {title} / {ref}"] = (grafana_expr(expr.replace("$job", jobs)),
                                                       must_move(title, expr))
    for rule in recording_rules():
        pending[f"rule {rule['record']}"] = (rule["expr"], False)
    await_data(store, pending, stack.started, DEADLINE, stack.procs, WORKER_JOB)
    for uid, data in committed_dashboards().items():
        for name, query in variable_queries(data):
            selector = grafana_expr(query[len("label_values("):query.rindex(",")].replace("$job", jobs))
            assert store.label_values(name, selector), f"{uid}: variable {name} has no options"
