import os
import sys
from pathlib import Path

# The reference app serves /api/v1/metrics behind its API key, as Sublarr does, so
# telemetry adds no route of its own by default. Most tests scrape telemetry's own
# /metrics: the documented second choice, an explicit SUBLARR_METRICS_PATH.
# Subprocesses inherit it; the adoption tests remove it to test the default.
os.environ.setdefault("SUBLARR_METRICS_PATH", "/metrics")

# Tests import the packages from the source tree even without an install, and what
# is kept outside the installed package: the reference app (examples/refapp), the
# benchmark (bench/) and the dashboard and rules generators (monitoring/sublarr_dashboards,
# monitoring/sublarr_rules).
CHECKOUT = Path(__file__).resolve().parent.parent
for path in (CHECKOUT / "backend", CHECKOUT / "examples" / "refapp", CHECKOUT, CHECKOUT / "monitoring"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Real Redis/PostgreSQL fixtures: redis_server, redis_url, postgres_server, postgres_url;
# debug_collector: a collector logging every span and point (harness.tracing).
pytest_plugins = ["harness.server_fixtures", "harness.tracing"]
