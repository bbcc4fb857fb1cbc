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


def _import_samples(store, lines):
    """Write samples (text exposition lines with millisecond timestamps) into VictoriaMetrics."""
    import urllib.request
    request = urllib.request.Request(f"{store.url}/api/v1/import/prometheus", data="\n".join(lines).encode(),
                                     method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 204


def test_a_panel_with_data_earlier_in_the_range_is_data_on_victoriametrics(victoriametrics):
    """A job-latency quantile over a window without jobs is NaN: Prometheus returns it,
    VictoriaMetrics drops it. check judges both alike, from the dashboard's time range."""
    from telemetry.check import PrometheusClient, check_panels

    now_ms = int(time.time() * 1000)
    series = 'sublarr_job_duration_seconds_bucket{job="worker",instance="w1",function="f",le="%s"}'
    lines = []
    for step in range(80):  # every 15 s for the last 20 minutes; no job in the last 10
        at = now_ms - (80 - step) * 15_000
        done = min(step, 40)
        lines += [f"{series % '0.1'} {done} {at}", f"{series % '+Inf'} {2 * done} {at}"]
    for step in range(60):  # translations two to three hours ago: outside the range
        at = now_ms - 3 * 3_600_000 + step * 60_000
        lines.append(f'sublarr_translation_total{{job="worker",instance="w1",status="success"}} {step} {at}')
    _import_samples(victoriametrics, lines)
    wait_for(lambda: victoriametrics.query("count(count_over_time(sublarr_translation_total[4h]))")
             and victoriametrics.query("count(sublarr_job_duration_seconds_bucket)"),
             timeout=30, what="VictoriaMetrics to make the imported samples searchable")

    quantile = ('histogram_quantile(0.95, sum by (le, function) (rate(sublarr_job_duration_seconds_bucket'
                '{job=~"$job", instance=~"$instance"}[$__rate_interval])))')
    dashboard = {"panels": [
        {"title": "Job duration", "targets": [{"refId": "A", "expr": quantile}]},
        {"title": "Translations", "targets": [{"refId": "A", "expr": 'sum(rate(sublarr_translation_total'
                                                                     '{job=~"$job"}[$__rate_interval]))'}]},
        {"title": "Job outcomes", "targets": [{"refId": "A", "expr": 'sum(rate(sublarr_jobs_total'
                                                                     '{job=~"$job"}[$__rate_interval]))'}]},
    ]}
    client = PrometheusClient(victoriametrics.url)
    assert client.query(quantile.replace("$job", ".*").replace("$instance", ".*")
                        .replace("$__rate_interval", "1m")) == []  # the NaN is dropped, not returned
    findings = {f.name: f for f in check_panels(client, ".*", ".*", "1m", [], {"d": dashboard})}
    assert findings["d / Job duration [A]"].ok, findings["d / Job duration [A]"]
    assert "no value now" in findings["d / Job duration [A]"].reason
    for name in ("d / Translations [A]", "d / Job outcomes [A]"):  # nothing in the last hour stays missing
        assert not findings[name].ok and findings[name].required, findings[name]
