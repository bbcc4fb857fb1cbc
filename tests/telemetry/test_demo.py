"""The README's demo command, started as a user would, scraped, then stopped with Ctrl-C.

The demo sets its own SIGINT and SIGTERM handlers, so these tests hold
whatever signal dispositions pytest itself inherited; one of them starts the
demo with both signals ignored, as a shell's ``&``, CI runners and some
supervisors do.
"""
import math
import os
import re
import signal
import subprocess
import time

import pytest
import requests

from harness.support import REPO, parse, sample_value, wait_for
from telemetry import catalog

JOBS = {"method": "GET", "endpoint": "/api/v1/jobs", "status": "200"}


def start_demo(tmp_path, *args, ignore_signals=False):
    """scripts/demo on a free port; returns (process, metrics URL, lines read so far)."""
    env = dict(os.environ, SUBLARR_DATA_DIR=str(tmp_path), PYTHONUNBUFFERED="1")
    env.pop("SUBLARR_DATABASE_URL", None)
    env.pop("SUBLARR_REDIS_URL", None)

    def dispositions():
        # What `cmd &` in a non-interactive shell does to its children.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN if ignore_signals else signal.SIG_DFL)

    process = subprocess.Popen([str(REPO / "scripts" / "demo"), "--host", "127.0.0.1", "--port", "0", *args],
                               cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               preexec_fn=dispositions)
    lines = []
    deadline = time.monotonic() + 120
    url = None
    while url is None and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r"Metrics:\s+(http://\S+/metrics)", line)
        url = match.group(1) if match else None
    if url is None:
        stop(process)
        raise AssertionError("the demo never printed its metrics URL:\n" + "".join(lines))
    return process, url, lines


def stop(process):
    if process.poll() is None:
        process.kill()
        process.wait()


def test_demo_command_serves_metrics_and_stops_cleanly(tmp_path):
    process, url, lines = start_demo(tmp_path, "--rate", "40", "--seed", "5")
    try:
        def served_traffic():
            text = requests.get(url, timeout=5).text
            return text if (sample_value(text, "sublarr_http_requests_total", JOBS) or 0) >= 3 else None
        text = wait_for(served_traffic, timeout=60, interval=0.5, what="generated traffic in /metrics")
        families = parse(text)
        duration = families["sublarr_http_request_duration_seconds"]
        buckets = {float(labels["le"]): value for name, labels, value in duration
                   if name.endswith("_bucket") and labels.items() >= JOBS.items()}
        assert set(buckets) == {*catalog.family("sublarr_http_request_duration_seconds").buckets, math.inf}
        assert buckets[math.inf] == sample_value(text, "sublarr_http_request_duration_seconds_count", JOBS) \
            == sample_value(text, "sublarr_http_requests_total", JOBS)
        assert [(name, labels) for name, labels, _ in families["sublarr_http_requests_in_progress"]] == [
            ("sublarr_http_requests_in_progress", {})]
        assert families["sublarr_db_backend_info"] == [("sublarr_db_backend_info", {"dialect": "sqlite"}, 1.0)]
        assert [labels for _, labels, _ in families["sublarr_queue_size"]] == [{"backend": "memory"}]

        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
        assert process.returncode == 0, "".join(lines) + out
        assert "demo stopped" in out
        assert "Traceback" not in "".join(lines) + out
    finally:
        stop(process)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_demo_stops_on_signal_when_started_with_signals_ignored(tmp_path, signum):
    process, url, lines = start_demo(tmp_path, "--rate", "5", ignore_signals=True)
    try:
        assert requests.get(url, timeout=5).status_code == 200
        process.send_signal(signum)
        try:
            out, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the demo ignored {signum.name} (started with it ignored)")
        assert process.returncode == 0, "".join(lines) + out
        assert "demo stopped" in out
    finally:
        stop(process)
