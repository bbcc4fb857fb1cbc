"""`sublarr-telemetry check` against a real Prometheus scraping the demo."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from harness.support import CLI, wait_for

SCRAPE = "1s"


@pytest.fixture
def demo(tmp_path):
    env = dict(os.environ, SUBLARR_DATA_DIR=str(tmp_path), PYTHONUNBUFFERED="1")
    for key in ("SUBLARR_DATABASE_URL", "SUBLARR_REDIS_URL"):
        env.pop(key, None)
    process = subprocess.Popen([sys.executable, "-m", "refapp.demo", "--host", "127.0.0.1",
                                "--port", "0", "--rate", "40", "--seed", "3"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = None
    while url is None:
        line = process.stdout.readline()
        assert line, "demo exited before printing its metrics URL"
        match = re.search(r"Metrics:\s+http://([^/]+)/metrics", line)
        url = match.group(1) if match else None
    import threading
    threading.Thread(target=process.stdout.read, daemon=True).start()  # keep the pipe drained
    yield url
    process.send_signal(signal.SIGINT)
    process.wait(30)


def scrape_config(target, drop=None):
    job = {"job_name": "sublarr", "scrape_interval": SCRAPE, "static_configs": [{"targets": [target]}]}
    if drop:
        job["metric_relabel_configs"] = [{"source_labels": ["__name__"], "regex": drop, "action": "drop"}]
    return {"global": {"scrape_interval": SCRAPE, "evaluation_interval": SCRAPE}, "scrape_configs": [job]}


def run_check(prometheus_url):
    return subprocess.run([*CLI, "check", "--prometheus",
                           prometheus_url, "--rate-interval", "15s"], capture_output=True, text=True, timeout=120)


def test_check_reports_everything_present_for_the_demo(demo, prometheus_factory):
    prometheus = prometheus_factory(scrape_config(demo))

    def passes():
        result = run_check(prometheus.url)
        return result if result.returncode == 0 else None
    try:
        result = wait_for(passes, timeout=90, interval=3, what="check to pass against the demo")
    except AssertionError:
        last = run_check(prometheus.url)
        raise AssertionError(last.stdout[-4000:]) from None
    assert "MISSING" not in result.stdout
    assert re.search(r"family\s+sublarr_http_requests_total\s+ok", result.stdout)
    assert re.search(r"panel\s+sublarr-overview / .+ ok", result.stdout)
    assert "0 required missing" in result.stdout


def test_check_names_a_missing_family_and_fails(demo, prometheus_factory):
    prometheus = prometheus_factory(scrape_config(demo, drop="sublarr_cache_size"))
    wait_for(lambda: "sublarr_http_requests_total" in prometheus.api("label/__name__/values"),
             timeout=30, what="the first scrape")
    time.sleep(3)
    result = run_check(prometheus.url)
    assert result.returncode == 1, result.stdout
    assert re.search(r"family\s+sublarr_cache_size\s+MISSING\s+absent", result.stdout), result.stdout
    assert re.search(r"panel\s+sublarr-database / .+MISSING.+sublarr_cache_size", result.stdout), result.stdout


def test_check_explains_an_unreachable_prometheus():
    result = run_check("http://127.0.0.1:9")
    assert result.returncode == 2
    assert "cannot query http://127.0.0.1:9" in result.stdout


def test_check_before_any_data_says_no_data_yet_not_unconfigured(prometheus_factory):
    """A Prometheus that has nothing from the app cannot know which sources it has."""
    from harness.support import free_port

    prometheus = prometheus_factory(scrape_config(f"127.0.0.1:{free_port()}"))  # nothing listens there
    wait_for(lambda: prometheus.query('up{job="sublarr"}'), timeout=30, what="the first (failed) scrape")
    result = subprocess.run([*CLI, "check", "--prometheus",
                             prometheus.url, "--job", "sublarr"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout
    assert "configured" not in result.stdout, result.stdout
    assert re.search(r"family\s+sublarr_db_pool_size\s+no data\s+no data yet: Prometheus cannot scrape",
                     result.stdout), result.stdout
    assert re.search(r"panel\s+sublarr-overview / .+no data\s+no data yet", result.stdout), result.stdout
    assert "up == 0" in result.stdout.splitlines()[-1]

    result = subprocess.run([*CLI, "check", "--prometheus",
                             prometheus.url, "--job", "no-such-job", "--families-only"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout
    assert "no scrape target with job=~'no-such-job'" in result.stdout, result.stdout
