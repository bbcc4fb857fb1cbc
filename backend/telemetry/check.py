"""``sublarr-telemetry check --prometheus URL``: is the telemetry arriving?

Asks a live Prometheus which ``sublarr_*`` families it has and whether every
dashboard panel's query returns data (now, or earlier in the dashboard's time
range, as Grafana would draw it), and prints a table with a reason for each
miss. Families that only exist in some set-ups are expected only when
the app says that set-up is in use (for example the Redis families once
``sublarr_telemetry_source_up{source="redis"}`` exists); families that need an
RQ worker pushing, or a cap being reached, are reported but never fail.
Before Prometheus holds any ``sublarr_*`` sample for the job (it has not
scraped the app yet, or cannot) nothing can be told about what is
configured, so every check then says "no data yet" and why, instead of
calling the optional sources unconfigured.
"""
from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from . import catalog
from .dashboard_json import default_dashboards_dir, load_dashboards, panel_queries

SAMPLE_SUFFIXES = ("_bucket", "_sum", "_count")
OPTIONAL = {
    "sublarr_telemetry_series_overflow_total": "only after a family reached SUBLARR_METRICS_MAX_SERIES",
    "sublarr_job_duration_seconds": "needs an RQ worker (telemetry.rq_worker) pushing over OTLP or "
                                    "serving SUBLARR_METRICS_LISTEN",
    "sublarr_jobs_total": "needs an RQ worker (telemetry.rq_worker) pushing over OTLP or "
                          "serving SUBLARR_METRICS_LISTEN",
}
NEEDS_SOURCE = {  # family name -> the source whose presence makes it expected
    "sublarr_redis_connected": "redis", "sublarr_redis_memory_used_bytes": "redis",
    "sublarr_disk_usage_percent": "disk",
    "sublarr_job_queue_size": "job_queue", "sublarr_wanted_queue_size": "wanted",
    "sublarr_db_pool_size": "pool", "sublarr_db_pool_checked_out": "pool", "sublarr_db_pool_overflow": "pool",
}
TIME_RANGE, TIME_RANGE_SECONDS = "1h", 3600.0
"""The dashboard time range check assumes: ``$__range``, and how far back a panel's data counts."""
_METRIC = re.compile(r"(?<![\w:])(sublarr_[a-z0-9_]+)")
_SCRAPE_ONLY = re.compile(r"(?<![\w:])up\{")


class PrometheusError(RuntimeError):
    pass


@dataclass(frozen=True)
class Finding:
    kind: str       # family or panel
    name: str
    ok: bool
    required: bool
    reason: str
    pending: bool = False  # nothing to judge yet: Prometheus has no sublarr_* data for the job


def family_of(sample_name: str) -> str | None:
    names = {f.name for f in catalog.FAMILIES}
    if sample_name in names:
        return sample_name
    for suffix in SAMPLE_SUFFIXES:
        if sample_name.endswith(suffix) and sample_name[: -len(suffix)] in names:
            return sample_name[: -len(suffix)]
    return None


def families_in(expr: str) -> set[str]:
    return {f for f in (family_of(m) for m in _METRIC.findall(expr)) if f}


class PrometheusClient:
    def __init__(self, base_url: str, timeout: float = 10.0, clock=time.time):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._clock = clock

    def query(self, expr: str) -> list[dict]:
        """Instant query at the server's now."""
        return self._get("query", expr, {"query": expr})

    def query_range(self, expr: str, seconds: float, step: str) -> list[dict]:
        """Range query over the last ``seconds``, one point per ``step`` (a duration such as ``15s``)."""
        end = self._clock()
        return self._get("query_range", expr, {"query": expr, "start": f"{end - seconds:.3f}",
                                               "end": f"{end:.3f}", "step": step})

    def _get(self, endpoint: str, expr: str, params: dict) -> list[dict]:
        url = f"{self.base_url}/api/v1/{endpoint}?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            raise PrometheusError(f"{exc.code} from Prometheus for {expr!r}: {detail}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise PrometheusError(f"cannot query {self.base_url}: {exc}") from None
        if body.get("status") != "success":
            raise PrometheusError(f"query {expr!r} failed: {body.get('error')}")
        return body["data"]["result"]


def substitute(expr: str, job: str, instance: str, rate_interval: str, time_range: str = TIME_RANGE) -> str:
    """Template variables replaced the way Grafana would for the given selection."""
    out = expr.replace("$__rate_interval", rate_interval).replace("${__rate_interval}", rate_interval)
    out = out.replace("$__range", time_range).replace("${__range}", time_range)
    out = out.replace("$__interval", rate_interval).replace("${__interval}", rate_interval)
    out = re.sub(r"\$\{?job\}?", job, out)
    out = re.sub(r"\$\{?instance\}?", instance, out)
    return out


def no_data_reason(client: PrometheusClient, job: str) -> str:
    """Why Prometheus has no ``sublarr_*`` sample for ``job``, from its ``up`` series."""
    ups = [float(r["value"][1]) for r in client.query(f'up{{job=~"{job}"}}')]
    if not ups:
        return (f"no data yet: Prometheus has no scrape target with job=~{job!r} (or has not scraped it yet) "
                "and nothing was pushed under that job; check the scrape config or the OTLP push, and --job")
    if not any(ups):
        return (f"no data yet: Prometheus cannot scrape the job=~{job!r} target (up == 0); "
                "is the app running, and are the address and metrics path right?")
    return (f"no data yet: Prometheus scrapes job=~{job!r} but got no sublarr_* series; "
            "is that the app's metrics path, and is SUBLARR_METRICS_ENABLED on?")


def check_families(client: PrometheusClient, job: str) -> list[Finding]:
    present = {r["metric"]["__name__"] for r in client.query(
        f'count by (__name__) ({{__name__=~"sublarr_.+", job=~"{job}"}})')}
    if not present:
        reason = no_data_reason(client, job)
        return [Finding("family", family.name, False, True, reason, pending=True) for family in catalog.FAMILIES]
    present_families = {f for f in (family_of(n) for n in present) if f}
    source_series = client.query(f'sublarr_telemetry_source_up{{job=~"{job}"}}')
    sources = {r["metric"].get("source") for r in source_series}
    findings = []
    for family in catalog.FAMILIES:
        ok = family.name in present_families
        required, reason = True, "present" if ok else "absent"
        if family.name in OPTIONAL:
            required = False
            reason = "present" if ok else f"absent ({OPTIONAL[family.name]})"
        elif family.name in NEEDS_SOURCE and not source_series:
            reason = "present" if ok else (f"absent; whether a {NEEDS_SOURCE[family.name]} source is configured "
                                           "shows once sublarr_telemetry_source_up has data")
        elif family.name in NEEDS_SOURCE and NEEDS_SOURCE[family.name] not in sources:
            required = False
            reason = "present" if ok else f"absent (no {NEEDS_SOURCE[family.name]} source configured)"
        elif not ok:
            reason = f"absent: no sample of {family.name} for job=~{job!r}; is the app scraped and was it exercised?"
        findings.append(Finding("family", family.name, ok, required, reason))
    return findings


def check_panels(client: PrometheusClient, job: str, instance: str, rate_interval: str,
                 family_findings: list[Finding], dashboards: dict[str, dict]) -> list[Finding]:
    """One finding per Prometheus target of every panel of ``dashboards`` (uid -> dashboard JSON)."""

    optional = {f.name: f.reason for f in family_findings if not f.required and not f.ok}
    # A store fed only by pushes (OTLP into Prometheus 3, VictoriaMetrics) has
    # no scrape targets, so panels of `up` alone cannot have data there.
    scraped = bool(client.query(f'count(up{{job=~"{job}"}})'))
    waiting = next((f.reason for f in family_findings if f.pending), None)
    findings = []
    for uid, dashboard in sorted(dashboards.items()):
        for title, ref, expr in panel_queries(dashboard):
            name = f"{uid} / {title} [{ref}]"
            if waiting:
                findings.append(Finding("panel", name, False, True, waiting, pending=True))
                continue
            query = substitute(expr, job, instance, rate_interval)
            try:
                result = client.query(query)
                # Empty now is not yet "no data": a quantile or ratio over a window without
                # observations is NaN, which Prometheus returns and VictoriaMetrics drops.
                # Grafana draws the whole time range, so earlier points count as data.
                earlier = [] if result else client.query_range(query, TIME_RANGE_SECONDS, rate_interval)
            except PrometheusError as exc:
                findings.append(Finding("panel", name, False, True, str(exc)))
                continue
            needed = families_in(expr)
            if result:
                findings.append(Finding("panel", name, True, True, "data"))
            elif earlier:
                findings.append(Finding("panel", name, True, True,
                                        f"data in the last {TIME_RANGE}, no value now (no observation in the "
                                        f"last {rate_interval}?)"))
            elif not needed and not scraped and _SCRAPE_ONLY.search(expr):
                findings.append(Finding("panel", name, False, False,
                                        "no data (no scrape targets: the processes push, e.g. over OTLP)"))
            elif needed and needed <= set(optional):
                findings.append(Finding("panel", name, False, False,
                                        "no data (" + "; ".join(sorted({optional[n] for n in needed})) + ")"))
            else:
                findings.append(Finding("panel", name, False, True,
                                        "no data; needs " + ", ".join(sorted(needed)) if needed else "no data"))
    return findings


def render_table(findings: list[Finding]) -> str:
    width = max(len(f.name) for f in findings)
    lines = [f"{'CHECK':<7} {'NAME':<{width}}  {'STATUS':<7} REASON"]
    for f in findings:
        status = "ok" if f.ok else "no data" if f.pending else "MISSING" if f.required else "n/a"
        lines.append(f"{f.kind:<7} {f.name:<{width}}  {status:<7} {f.reason}")
    return "\n".join(lines) + "\n"


def run_check(prometheus: str, job: str = ".*", instance: str = ".*", rate_interval: str = "1m",
              panels: bool = True, out=None, dashboards_dir: Path | None = None) -> int:
    """Families, then (unless ``panels`` is false) the panels of the dashboard JSON in ``dashboards_dir``
    (default: the checkout's monitoring/grafana/dashboards)."""
    import sys
    out = out or sys.stdout
    dashboards = {}
    if panels:
        dashboards_dir = dashboards_dir or default_dashboards_dir()
        if dashboards_dir is None:
            print("check failed: no dashboards directory (monitoring/grafana/dashboards) here; "
                  "pass --dashboards DIR or --families-only", file=out)
            return 2
        try:
            dashboards = load_dashboards(dashboards_dir)
        except ValueError as exc:
            print(f"check failed: {exc}", file=out)
            return 2
        if not dashboards:
            print(f"check failed: no dashboard JSON in {dashboards_dir}", file=out)
            return 2
    client = PrometheusClient(prometheus)
    try:
        findings = check_families(client, job)
        if panels:
            findings += check_panels(client, job, instance, rate_interval, findings, dashboards)
    except PrometheusError as exc:
        print(f"check failed: {exc}", file=out)
        return 2
    out.write(render_table(findings))
    waiting = next((f.reason for f in findings if f.pending), None)
    if waiting:
        print(f"\n{waiting}", file=out)
        return 1
    missing = [f for f in findings if f.required and not f.ok]
    families = sum(1 for f in findings if f.kind == "family" and f.ok)
    panels_ok = sum(1 for f in findings if f.kind == "panel" and f.ok)
    print(f"\n{families} families present, {panels_ok} panels with data, {len(missing)} required missing",
          file=out)
    return 1 if missing else 0
