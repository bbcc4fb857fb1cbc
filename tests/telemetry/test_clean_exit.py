"""OTLP mode: a web or worker process exits without a traceback, flushes its
last points, and the exit does not hang (the SDK's own exit handler used to
start source threads at interpreter shutdown and time out)."""
import os
import subprocess
import sys
import textwrap
import time

import pytest

from harness.support import REPO, samples, wait_for
from telemetry.pipeline import EXIT_FLUSH_SECONDS

# The exit's own bound plus room for a shared, noisy machine: this catches a hang, not a cost.
EXIT_HANG_SECONDS = EXIT_FLUSH_SECONDS + 4.0

SCRIPTS = {
    "web": """
        from refapp import Config, create_app
        app = create_app(Config.from_env())
        client = app.test_client()
        for _ in range(3):
            client.get("/api/v1/jobs")
    """,
    "worker": """
        import redis
        from rq import Queue
        from refapp import Config, create_app, jobs
        from refapp.worker import _worker_class
        config = Config.from_env()
        app = create_app(config)
        connection = redis.Redis.from_url(config.redis_url)
        queue = Queue("sublarr", connection=connection)
        for _ in range(3):
            queue.enqueue(jobs.sleep_for, 0)
        _worker_class(False)([queue], connection=connection, app=app).work(burst=True)
    """,
}


def run_until_exit(role, env, tmp_path):
    """Run the script; (seconds from its last line to the process's end, stderr)."""
    (tmp_path / "exit.db").unlink(missing_ok=True)
    script = textwrap.dedent(SCRIPTS[role]) + "\nprint('DONE', flush=True)\n"
    process = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    seen = []
    for line in process.stdout:  # rq logs to stdout before
        seen.append(line)
        if line.startswith("DONE"):
            break
    assert seen and seen[-1].startswith("DONE"), "".join(seen)[-2000:] + process.stderr.read()[-3000:]
    done_at = time.monotonic()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr[-3000:]
    return time.monotonic() - done_at, stderr


@pytest.mark.parametrize("role", ["web", "worker"])
def test_exit_is_clean_and_flushes(role, fresh_otel_collector, redis_url, tmp_path):
    service = f"sublarr-exit-{role}"
    env = dict(os.environ, OTEL_METRICS_EXPORTER="otlp", OTEL_SERVICE_NAME=service,
               OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=fresh_otel_collector.otlp_http_endpoint + "/v1/metrics",
               OTEL_METRIC_EXPORT_INTERVAL="60000",  # nothing is pushed before the exit's final flush
               SUBLARR_DATA_DIR=str(tmp_path), SUBLARR_DATABASE_URL=f"sqlite:///{tmp_path}/exit.db",
               SUBLARR_REDIS_URL=redis_url, SUBLARR_SIM_LATENCY_SCALE="0", PYTHONPATH=str(REPO / "backend"))
    # The same process without telemetry: interpreter teardown alone, on this machine, now.
    baseline, _ = run_until_exit(role, dict(env, OTEL_METRICS_EXPORTER="none"), tmp_path)
    exit_seconds, stderr = run_until_exit(role, env, tmp_path)
    for problem in ("Traceback", "MetricsTimeoutError", "can't create new thread", "Exception"):
        assert problem not in stderr, stderr[-3000:]
    assert exit_seconds - baseline < EXIT_HANG_SECONDS, \
        f"exit took {exit_seconds:.2f}s, {baseline:.2f}s without telemetry"

    family, match = (("sublarr_http_requests_total", {"endpoint": "/api/v1/jobs"}) if role == "web"
                     else ("sublarr_jobs_total", {"function": "refapp.jobs.sleep_for"}))
    text = wait_for(lambda: (lambda t: t if samples(t, family, job=service, **match) else None)(
        fresh_otel_collector.scrape()), timeout=20, interval=0.5, what="the final flush at the collector")
    assert [v for _, v in samples(text, family, job=service, **match)] == [3]
