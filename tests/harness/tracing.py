"""The reference app with telemetry built by hand, and a collector that logs what it receives:
what the tracing tests (requests, queries, jobs) read spans and exemplars from."""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from telemetry import StateTargets, Telemetry


def make_refapp(tmp_path, settings, redis_url=None, name="app"):
    from refapp import Config, create_app

    config = Config.from_env(env={}, database_url=f"sqlite:///{tmp_path / name}.db", data_dir=str(tmp_path),
                             latency_scale=0.0, failure_rate=0.0, seed=1, redis_url=redis_url)
    app = create_app(config, telemetry=False)
    telemetry = Telemetry(settings=settings, providers=config.providers,
                          targets=StateTargets(redis_url=redis_url, disk_paths=(str(tmp_path),),
                                               version="test")).init_app(app)
    return app, telemetry


def close_refapp(app, telemetry):
    telemetry.shutdown()
    shutdown = getattr(app.job_queue, "shutdown", None)
    if shutdown is not None:
        shutdown(wait=True)
    app.db_engine.dispose()


DEBUG_OVERLAY = textwrap.dedent("""\
    # Test-only: log every span and metric point the collector receives.
    exporters:
      debug:
        verbosity: detailed
        sampling_initial: 100000
        sampling_thereafter: 1
    service:
      pipelines:
        metrics:
          exporters: [prometheus, debug]
""")

_ATTRIBUTE = re.compile(r"^\s+-> (.+?): (.*)$")
_SPAN_FIELD = re.compile(r"^    (Trace ID|Parent ID|ID|Name|Kind)\s*: ?(.*)$")
_TYPED = re.compile(r"^\w+\((.*)\)$")
_POINT_FIELD = re.compile(r"^(Value|Count|Sum): (.*)$")


def parse_debug_log(text: str) -> tuple[list[dict], list[dict]]:
    """The debug exporter's detailed output: (spans, metrics), each with its resource and scope."""
    spans, metrics = [], []
    resource = scope = item = point = exemplar = None
    section = None
    for line in text.splitlines():
        # A batch holds several resources: only the first "Resource... #" line carries the
        # log line's timestamp, the next ones start the line.
        if re.match(r"^(\S+\t\w+\t)?Resource(Spans|Metrics) #\d+$", line):
            resource, scope, section = {}, None, "resource"
            continue
        if re.match(r"^\d{4}-\d\d-\d\dT", line):
            section = None
            continue
        if resource is None:
            continue
        if line.startswith("InstrumentationScope "):
            scope, section = line.split()[1], None
        elif line.startswith("Span #"):
            item = {"resource": resource, "scope": scope, "attributes": {}}
            spans.append(item)
            section = "span"
        elif line.startswith("Metric #"):
            item = {"resource": resource, "scope": scope, "points": []}
            metrics.append(item)
            section = "descriptor"
        elif line.startswith(("HistogramDataPoints #", "NumberDataPoints #")):
            point = {"attributes": {}, "exemplars": []}
            item["points"].append(point)
            section = "point"
        elif line.startswith("Exemplar #"):
            exemplar = {}
            point["exemplars"].append(exemplar)
            section = "exemplar"
        elif line.startswith("Attributes:") and section in ("span", "span-attributes"):
            section = "span-attributes"
        elif section == "point" and _POINT_FIELD.match(line):
            key, value = _POINT_FIELD.match(line).groups()
            point[key.lower()] = value
        elif section == "span" and _SPAN_FIELD.match(line):
            key, value = _SPAN_FIELD.match(line).groups()
            item[key] = value.strip()
        elif _ATTRIBUTE.match(line) and section is not None:
            key, value = _ATTRIBUTE.match(line).groups()
            typed = _TYPED.match(value)
            value = typed.group(1) if typed else value
            target = {"resource": resource, "span-attributes": item and item.get("attributes"),
                      "descriptor": item, "point": point and point["attributes"], "exemplar": exemplar}[section]
            target[key] = value
    return spans, metrics


def collector_env(collector, **extra):
    env = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "prometheus,otlp",
           "OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_http_endpoint,
           "OTEL_METRIC_EXPORT_INTERVAL": "500", "OTEL_BSP_SCHEDULE_DELAY": "100"}
    env.update(extra)
    return env


@pytest.fixture
def debug_collector(otelcol_binary, tmp_path):
    """A collector of its own that logs every span and metric point (detailed debug exporter)."""
    from harness.collector import OtelCollector

    overlay = tmp_path / "debug-overlay.yaml"
    overlay.write_text(DEBUG_OVERLAY)
    with OtelCollector(otelcol_binary, extra_configs=[overlay]) as collector:
        yield collector


def collector_log(collector) -> str:
    return Path(collector.log_path).read_text(errors="replace")
