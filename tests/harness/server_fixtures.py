"""pytest fixtures around harness/servers.py and harness/collector.py: one Redis, one
PostgreSQL and one OpenTelemetry Collector per session.

Registered from conftest.py via ``pytest_plugins = ["harness.server_fixtures"]``.
A missing binary goes through support.missing (fail under CI, skip elsewhere);
a server that is installed but will not start is a test error, never a skip.
"""
from __future__ import annotations

import itertools
import re

import pytest

from harness.collector import OtelCollector, find_binary
from harness.prometheus_server import LINES
from harness.servers import PostgresServer, RedisServer, ServerUnavailable
from harness.support import missing

_db_numbers = itertools.count(1)


def _found(find, *args) -> str:
    """A binary's path from ``find(*args)``, or the missing installation reported."""
    try:
        return find(*args)
    except ServerUnavailable as exc:
        missing(str(exc))


def _start(factory):
    """Build and start a server, or report the missing installation."""
    try:
        server = factory()
    except ServerUnavailable as exc:
        missing(str(exc))
    try:
        return server.start()
    except BaseException:
        server.close()
        raise


@pytest.fixture(scope="session")
def redis_server():
    """A real redis-server on a free port; closed (process + temp dir) at session end."""
    server = _start(RedisServer)
    yield server
    server.close()


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL cluster on a free port; closed at session end."""
    server = _start(PostgresServer)
    yield server
    server.close()


@pytest.fixture
def redis_url(redis_server):
    """URL of an empty Redis: undoes earlier pause()/stop(), then FLUSHALL."""
    redis_server.ensure_running()
    redis_server.flushall()
    return redis_server.url


@pytest.fixture
def postgres_url(request, postgres_server):
    """URL of a fresh database for this test only; dropped (forcibly) afterwards."""
    postgres_server.ensure_running()
    stem = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:40]
    name = f"t{next(_db_numbers)}_{stem}"
    url = postgres_server.create_database(name)
    yield url
    if postgres_server.running:
        postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def otelcol_binary() -> str:
    """Path of the built otelcol-sublarr; never builds (scripts/build-collector does)."""
    return _found(find_binary)


@pytest.fixture(scope="session")
def otel_collector(otelcol_binary):
    """The built otelcol-sublarr running otel-collector/config.yaml on free ports.

    Shared by the session: the exporter keeps series until metric_expiration,
    so each test pushes under its own service.instance.id (the `instance`
    label) and reads only its own series.
    """
    collector = _start(lambda: OtelCollector(otelcol_binary))
    yield collector
    collector.close()


@pytest.fixture
def running_otel_collector(otel_collector):
    """The session collector, brought back up if an earlier test stopped it."""
    otel_collector.ensure_running()
    return otel_collector


# --- Prometheus (harness/prometheus_server.py) and a private collector ----------

@pytest.fixture(scope="session", params=LINES)
def prometheus_line(request) -> str:
    """Each Prometheus test runs against Debian's 2.42 (the oldest supported
    server) and the Prometheus 3 of scripts/build-prometheus."""
    return request.param


@pytest.fixture(scope="session")
def prometheus_binary(prometheus_line) -> str:
    """Path of the prometheus server binary of this line."""
    from harness.prometheus_server import find_prometheus
    return _found(find_prometheus, prometheus_line)


@pytest.fixture(scope="session")
def promtool_binary(prometheus_line) -> str:
    """Path of the promtool of this line."""
    from harness.prometheus_server import find_promtool
    return _found(find_promtool, prometheus_line)


@pytest.fixture(scope="session")
def prometheus3_binary() -> str:
    """Prometheus 3 only: for what 2.x cannot do (OTLP receiver, native histograms)."""
    from harness.prometheus_server import PROMETHEUS3, find_prometheus
    return _found(find_prometheus, PROMETHEUS3)


def _prometheus_starter(binary):
    """Yields start(config, rule_files, flags) for Prometheus servers of ``binary``;
    closes every server it started (process and temp dir) when resumed."""
    from harness.prometheus_server import PrometheusServer
    started = []

    def start(config: dict, rule_files: dict | None = None, flags=()):
        server = _start(lambda: PrometheusServer(binary, config, rule_files, flags))
        started.append(server)
        return server
    yield start
    for server in started:
        server.close()


@pytest.fixture
def prometheus_factory(prometheus_binary):
    """start(config: dict, rule_files={relative: source}, flags=()) -> a running PrometheusServer.

    Every server started through it is closed (process and temp dir) after the test.
    """
    yield from _prometheus_starter(prometheus_binary)


@pytest.fixture
def prometheus3_factory(prometheus3_binary):
    """As prometheus_factory, always Prometheus 3."""
    yield from _prometheus_starter(prometheus3_binary)


@pytest.fixture
def otlp_prometheus(prometheus3_factory):
    """start(flags=()) -> Prometheus 3 running the shipped monitoring/prometheus/prometheus.otlp.yml
    (OTLP receiver on, the shipped rules, evaluated every second), with extra ``flags``."""
    def start(flags=()):
        import yaml
        from harness.support import REPO
        directory = REPO / "monitoring" / "prometheus"
        config = yaml.safe_load((directory / "prometheus.otlp.yml").read_text())
        config["global"]["evaluation_interval"] = "1s"
        return prometheus3_factory(config, rule_files={path: directory / path for path in config["rule_files"]},
                                   flags=["--web.enable-otlp-receiver", *flags])
    return start


@pytest.fixture
def fresh_otel_collector(otelcol_binary):
    """A collector of this test's own: its exporter holds only what this test pushed."""
    collector = _start(lambda: OtelCollector(otelcol_binary))
    yield collector
    collector.close()


@pytest.fixture
def victoriametrics():
    """A running single-node VictoriaMetrics of this test's own (scripts/build-victoriametrics)."""
    from harness.victoriametrics_server import VictoriaMetricsServer
    # VictoriaMetrics makes the instrumentation scope labels unless told
    # not to (otel-collector/vendor.yaml says why the collector cannot).
    server = _start(lambda: VictoriaMetricsServer(flags=["-opentelemetry.promoteScopeMetadata=false"]))
    yield server
    server.close()
