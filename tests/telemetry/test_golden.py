"""Golden exposition: the HTTP families after a known request mix, byte for byte.

Durations come from a scripted clock (binary fractions, so sums are exact),
which makes bucket counts and sums as deterministic as the labels. The golden
file was checked by hand against docs/metrics.md; regenerate it only for an
intended contract change: ``SUBLARR_UPDATE_GOLDEN=1 scripts/test -k golden``.
"""
import os
from pathlib import Path

import pytest

from harness.support import ScriptedClock
from telemetry import Settings, Telemetry

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "http_families.prom"

# (method, path, expected status, scripted duration in seconds); None = not measured
MIX = [
    ("GET", "/api/v1/health", 200, None),            # health check: excluded
    ("GET", "/api/v1/jobs", 200, 0.0078125),
    ("GET", "/api/v1/jobs", 200, 0.03125),
    ("GET", "/api/v1/jobs", 200, 0.25),
    ("GET", "/api/v1/jobs/999", 404, 0.0078125),     # matched route answering 404
    ("GET", "/api/v1/series/1", 200, 0.0625),
    ("GET", "/api/v1/series/2", 200, 1.5),
    ("POST", "/api/v1/wanted", 201, 0.125),
    ("GET", "/api/v1/no/such/route", 404, 0.0009765625),  # no route: <unmatched> (the SPA answers outside /api/)
    ("DELETE", "/api/v1/jobs", 405, 0.001953125),    # method not allowed: <unmatched>
    ("PURGE", "/api/v1/jobs", 405, 0.001953125),     # non-standard method: _OTHER
    ("GET", "/api/v1/debug/error", 500, 7.0),        # unhandled exception
    ("GET", "/api/v1/series/3", 200, 12.0),          # beyond the last bucket
    ("GET", "/static/app.css", 200, None),           # static file: excluded
    ("GET", "/metrics", 200, None),                  # the scrape: excluded
]


def http_families(text: str) -> str:
    keep = []
    for line in text.splitlines():
        name = line.split()[2] if line.startswith("#") else line.split("{")[0].split(" ")[0]
        if name.startswith("sublarr_http_"):
            keep.append(line)
    return "\n".join(keep) + "\n"


@pytest.fixture
def refapp_factory(tmp_path):
    from refapp import Config, create_app
    apps = []

    def make():
        config = Config.from_env({}, data_dir=str(tmp_path), latency_scale=0.0, failure_rate=0.0, seed=1)
        app = create_app(config, telemetry=False)
        apps.append(app)
        return app
    yield make
    for app in apps:
        app.job_queue.shutdown(wait=True)


def test_http_families_match_golden(refapp_factory):
    app = refapp_factory()
    clock = ScriptedClock([d for *_, d in MIX if d is not None])
    telemetry = Telemetry(settings=Settings(), clock=clock).init_app(app)
    client = app.test_client()
    for method, path, status, _ in MIX[:-1]:
        if method == "POST":
            response = client.open(path, method=method, json={"title": "Show", "language": "de"})
        else:
            response = client.open(path, method=method)
        assert response.status_code == status, (method, path, response.status_code)
    text = client.get("/metrics").get_data(as_text=True)
    telemetry.shutdown()
    actual = http_families(text)
    if os.environ.get("SUBLARR_UPDATE_GOLDEN"):
        GOLDEN.write_text(actual)
    assert actual == GOLDEN.read_text()
