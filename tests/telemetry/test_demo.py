"""The README's demo command, started as a user would, scraped, then stopped with Ctrl-C."""
import os
import re
import signal
import subprocess
import time

import requests

from support import REPO, sample_value, wait_for


def test_demo_command_serves_metrics_and_stops_cleanly(tmp_path):
    env = dict(os.environ, SUBLARR_DATA_DIR=str(tmp_path), PYTHONUNBUFFERED="1")
    env.pop("SUBLARR_DATABASE_URL", None)
    env.pop("SUBLARR_REDIS_URL", None)
    process = subprocess.Popen([str(REPO / "scripts" / "demo"), "--host", "127.0.0.1", "--port", "0",
                                "--rate", "40", "--seed", "5"],
                               cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
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
        assert url, "the demo never printed its metrics URL:\n" + "".join(lines)

        def served_traffic():
            text = requests.get(url, timeout=5).text
            total = sum(v for v in [sample_value(text, "sublarr_http_requests_total",
                                                 {"method": "GET", "endpoint": "/api/v1/jobs", "status": "200"})]
                        if v)
            return text if total >= 3 else None
        text = wait_for(served_traffic, timeout=60, interval=0.5, what="generated traffic in /metrics")
        assert "# TYPE sublarr_http_request_duration_seconds histogram" in text
        assert sample_value(text, "sublarr_http_requests_in_progress") is not None
        assert 'sublarr_db_backend_info{dialect="sqlite"} 1.0' in text
        assert 'sublarr_queue_size{backend="memory"}' in text

        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
        assert process.returncode == 0, "".join(lines) + out
        assert "demo stopped" in out
        assert "Traceback" not in "".join(lines) + out
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
