"""``sublarr-native-latency``: the duration percentiles from native histograms.

Only for set-ups with ``SUBLARR_METRICS_NATIVE_HISTOGRAMS=also|only`` pushing
OTLP into Prometheus 3 (see telemetry.native_histograms); on the classic
paths its panels stay empty, so it is not one of the default dashboards
(``DASHBOARD_MODULES``) and lives in its own directory:

  scripts/dashboards native [--check]   # monitoring/grafana/dashboards-native/

A native histogram is one series per label set with no ``le``; quantiles
aggregate it with ``sum`` like any counter.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as db

from .common import SECONDS, Target, new_dashboard, rate, timeseries_panel, to_dict

UID = "sublarr-native-latency"
TITLE = "Sublarr / Latency (native histograms)"
WHEN = {  # row -> when to look at it (the monitoring guide is generated from these and the panels)
    "Durations": "With native histograms pushed into Prometheus 3, when a percentile on the other "
                 "dashboards sits on a bucket bound and you need the value between the bounds.",
}


def native_quantile(q: float, histogram: str, by: Sequence[str] = ()) -> str:
    """``histogram_quantile`` over the rate of a native histogram summed over processes
    (no ``_bucket`` series and no ``le``: the histogram's own rate, as for a counter)."""
    return f"histogram_quantile({q}, {rate(histogram, by)})"


def percentiles(histogram: str, by: Sequence[str] = (), legend: str = "") -> list[Target]:
    return [Target(native_quantile(q, histogram, by), f"p{round(q * 100)} {legend}".strip())
            for q in (0.5, 0.95, 0.99)]


def build() -> dict:
    d = new_dashboard(UID, TITLE, "Request, query and job duration percentiles from the native histograms "
                      "Prometheus 3 stores for OTLP exponential histograms (<4.5 % relative error, "
                      "whatever the buckets).")
    d = (d.with_row(db.Row("Durations"))
         .with_panel(timeseries_panel(
             "HTTP request duration", "Median, 95th and 99th percentile of request durations over all "
             "web processes, from the native histogram.", SECONDS,
             percentiles("sublarr_http_request_duration_seconds"), width=12))
         .with_panel(timeseries_panel(
             "HTTP p95 by endpoint", "95th percentile request duration per route template.", SECONDS,
             [Target(native_quantile(0.95, "sublarr_http_request_duration_seconds", ("endpoint",)),
                     "{{endpoint}}")], width=12))
         .with_panel(timeseries_panel(
             "Query duration by operation", "95th percentile database statement duration by operation.",
             SECONDS, [Target(native_quantile(0.95, "sublarr_db_query_duration_seconds", ("operation",)),
                              "{{operation}}")], width=12))
         .with_panel(timeseries_panel(
             "Job duration by function", "Median and 95th percentile background job duration by function "
             "(recorded by the RQ workers).", SECONDS,
             [Target(native_quantile(0.5, "sublarr_job_duration_seconds", ("function",)), "p50 {{function}}"),
              Target(native_quantile(0.95, "sublarr_job_duration_seconds", ("function",)), "p95 {{function}}")],
             width=12)))
    return to_dict(d)


def out_path() -> Path:
    return Path(__file__).resolve().parents[1] / "grafana" / "dashboards-native" / f"{UID}.json"


def main(argv: list[str] | None = None) -> int:
    from . import render

    args = sys.argv[1:] if argv is None else argv
    path, text = out_path(), render(build())
    if "--check" in args:
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            print(f"{path}: differs from the generator's output; run scripts/dashboards native",
                  file=sys.stderr)
            return 1
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
