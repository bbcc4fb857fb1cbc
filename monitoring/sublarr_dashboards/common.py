"""Shared pieces of the Sublarr dashboards: variables, selectors, PromQL and panel helpers.

Built with grafana-foundation-sdk. Conventions every dashboard follows (and
tests/monitoring checks):

- one ``datasource`` variable (type prometheus); every panel, every target and
  every other variable points at ``${datasource}``, never at ``${DS_...}`` or
  ``__inputs`` (file provisioning resolves neither);
- ``job`` and ``instance`` variables from ``label_values(sublarr_info, ...)``,
  multi-select with All (``.*``); every selector carries both;
- rates over ``$__rate_interval``, never a fixed window;
- counters and histograms aggregate with ``sum by (...)`` so any number of
  processes add up; quantiles are ``histogram_quantile`` over
  ``sum by (le, ...)``;
- gauges that describe *shared* state (an RQ queue in Redis, the Redis
  server, the database) are read by every process that can see it, so they
  aggregate with ``max`` instead: summing would count the same queue once per
  web worker;
- every panel has a unit and a description, and is a current panel type;
- latency panels of the families that carry exemplars (requests, queries,
  jobs) ask for them, and their ``trace_id`` links to the trace datasource the
  ``traces`` variable selects (empty until one is provisioned).
"""
from __future__ import annotations

import json
from typing import Iterable, Sequence

from grafana_foundation_sdk.builders import bargauge, common as common_builders, dashboard as db
from grafana_foundation_sdk.builders import gauge, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as models
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

DATASOURCE_UID = "sublarr-prometheus"
"""The uid of the provisioned datasource (monitoring/grafana/provisioning/datasources)."""
DATASOURCE_NAME = "Prometheus"
DS = models.DataSourceRef(type_val="prometheus", uid="${datasource}")
TAGS = ["sublarr"]
TRACES_VARIABLE = "traces"
"""The dashboard variable selecting the trace datasource exemplars link to."""

SELECTOR = 'job=~"$job", instance=~"$instance"'
"""Label matchers every panel query carries."""

# Units (Grafana unit ids).
BYTES = "bytes"
SECONDS = "s"
PERCENT = "percent"  # 0-100
RATIO = "percentunit"  # 0-1
REQ_PER_S = "reqps"
OPS = "ops"  # operations per second
COUNT = "short"
STATE = "none"

GREEN, ORANGE, RED = "green", "orange", "red"


# --- PromQL -------------------------------------------------------------------

def sel(metric: str, *matchers: str) -> str:
    """``metric{job=~"$job", instance=~"$instance", <matchers>}``."""
    return f"{metric}{{{', '.join((SELECTOR, *matchers))}}}"


def _agg(op: str, labels: Sequence[str]) -> str:
    """``op by (a, b) `` or just ``op``, ready to be followed by ``(``."""
    return f"{op} by ({', '.join(labels)}) " if labels else op


def rate(metric: str, by: Sequence[str] = (), *matchers: str) -> str:
    """Per-second rate of a counter, summed over processes."""
    return f"{_agg('sum', by)}(rate({sel(metric, *matchers)}[$__rate_interval]))"


def increase_over_range(metric: str, by: Sequence[str] = (), *matchers: str) -> str:
    """Increase of a counter over the dashboard's time range, summed over processes."""
    return f"{_agg('sum', by)}(increase({sel(metric, *matchers)}[$__range]))"


def quantile(q: float, histogram: str, by: Sequence[str] = (), *matchers: str) -> str:
    """``histogram_quantile`` over the bucket rates summed by ``le`` (+ ``by``)."""
    labels = ("le", *by)
    return (f"histogram_quantile({q}, sum by ({', '.join(labels)}) "
            f"(rate({sel(histogram + '_bucket', *matchers)}[$__rate_interval])))")


def per_process(metric: str, by: Sequence[str] = (), *matchers: str) -> str:
    """A gauge each process reports about itself: processes add up."""
    return f"{_agg('sum', by)}({sel(metric, *matchers)})"


def shared(metric: str, by: Sequence[str] = (), *matchers: str, agg: str = "max") -> str:
    """A gauge every process reads from the same external thing: take one reading."""
    return f"{_agg(agg, by)}({sel(metric, *matchers)})"


def queue_gauge(metric: str) -> str:
    """Queue gauges by backend: the in-memory queue lives in each process (sum),
    an RQ queue lives in Redis and every web process sees all of it (max)."""
    rq = shared(metric, ("backend",), 'backend="rq"')
    memory = per_process(metric, ("backend",), 'backend="memory"')
    return f"{rq} or {memory}"


def cache_gauge(metric: str) -> str:
    """Like queue_gauge for the cache: a Redis cache is shared, a memory cache is per process."""
    redis = shared(metric, ("backend",), 'backend="redis"')
    memory = per_process(metric, ("backend",), 'backend="memory"')
    return f"{redis} or {memory}"


def cache_rate(metric: str) -> str:
    """Rate of a cache counter by backend, in parentheses.

    The Redis cache keeps its hit and miss counts in Redis itself, so every
    process reports the same shared counter: one reading (max). A memory
    cache counts in each process: sum.
    """
    redis_series = sel(metric, 'backend="redis"')
    redis = f"max by (backend) (rate({redis_series}[$__rate_interval]))"
    memory = rate(metric, ("backend",), 'backend="memory"')
    return f"({redis} or {memory})"


# --- targets and panels ----------------------------------------------------

class Target:
    """One Prometheus query of a panel."""

    def __init__(self, expr: str, legend: str = "__auto", *, instant: bool = False, table: bool = False,
                 exemplar: bool = False):
        self.expr = expr
        self.legend = legend
        self.instant = instant
        self.table = table
        self.exemplar = exemplar

    def build(self, ref_id: str) -> prometheus.Dataquery:
        query = (prometheus.Dataquery().expr(self.expr).ref_id(ref_id).datasource(DS)
                 .legend_format(self.legend))
        if self.instant:
            query = query.instant()
        if self.table:
            query = query.format(PromQueryFormat.TABLE)
        if self.exemplar:
            query = query.exemplar(True)
        return query


def trace_links(panel):
    """Exemplars' ``trace_id`` opens the trace in the datasource ``$traces`` selects."""
    link = {"title": "Open trace ${__value.raw}", "url": "",
            "internal": {"datasourceUid": "${%s}" % TRACES_VARIABLE,
                         "datasourceName": "${%s:text}" % TRACES_VARIABLE,
                         "query": {"query": "${__value.raw}", "queryType": "traceql"}}}
    return panel.override_by_name("trace_id", [models.DynamicConfigValue(id_val="links", value=[link])])


def _targets(panel, targets: Iterable[Target | str]):
    for index, target in enumerate(targets):
        if isinstance(target, str):
            target = Target(target)
        panel = panel.with_target(target.build(chr(ord("A") + index)))
    return panel


def _thresholds(steps: Sequence[tuple[float | None, str]]):
    return (db.ThresholdsConfig().mode(models.ThresholdsMode.ABSOLUTE)
            .steps([models.Threshold(value=value, color=color) for value, color in steps]))


def _base(panel, title: str, description: str, unit: str, targets, *, width: int, height: int,
          thresholds=None, mappings=None, min_value=None, max_value=None, decimals=None):
    panel = (panel.title(title).description(description).unit(unit).datasource(DS)
             .span(width).height(height))
    panel = _targets(panel, targets)
    if thresholds:
        panel = panel.thresholds(_thresholds(thresholds))
    if mappings:
        panel = panel.mappings(mappings)
    if min_value is not None:
        panel = panel.min(min_value)
    if max_value is not None:
        panel = panel.max(max_value)
    if decimals is not None:
        panel = panel.decimals(decimals)
    return panel


def timeseries_panel(title: str, description: str, unit: str, targets, *, width: int = 12,
                     height: int = 8, stack: bool = False, min_value=None, max_value=None,
                     thresholds=None, exemplars: bool = False):
    """``exemplars``: every target asks for exemplars, linked to the ``traces`` datasource."""
    panel = (timeseries.Panel().fill_opacity(10).line_width(1).show_points(common_models.VisibilityMode.NEVER)
             .legend(common_builders.VizLegendOptions().show_legend(True)
                     .display_mode(common_models.LegendDisplayMode.LIST)
                     .placement(common_models.LegendPlacement.BOTTOM))
             .tooltip(common_builders.VizTooltipOptions().mode(common_models.TooltipDisplayMode.MULTI)
                      .sort(common_models.SortOrder.DESCENDING)))
    if stack:
        panel = panel.stacking(common_builders.StackingConfig().mode(common_models.StackingMode.NORMAL))
    if exemplars:
        targets = [target if isinstance(target, Target) else Target(target) for target in targets]
        for target in targets:
            target.exemplar = True
        panel = trace_links(panel)
    return _base(panel, title, description, unit, targets, width=width, height=height,
                 thresholds=thresholds or [(None, GREEN)], min_value=min_value, max_value=max_value)


def stat_panel(title: str, description: str, unit: str, targets, *, width: int = 4, height: int = 4,
               thresholds=None, mappings=None, decimals=None, graph: bool = True, calc: str = "lastNotNull"):
    panel = (stat.Panel()
             .graph_mode(common_models.BigValueGraphMode.AREA if graph else common_models.BigValueGraphMode.NONE)
             .color_mode(common_models.BigValueColorMode.VALUE)
             .text_mode(common_models.BigValueTextMode.AUTO)
             .reduce_options(common_builders.ReduceDataOptions().calcs([calc]).values(False)))
    return _base(panel, title, description, unit, targets, width=width, height=height,
                 thresholds=thresholds or [(None, GREEN)], mappings=mappings, decimals=decimals)


def gauge_panel(title: str, description: str, unit: str, targets, *, width: int = 6, height: int = 6,
                thresholds=None, min_value=0, max_value=None):
    panel = (gauge.Panel().show_threshold_markers(True).show_threshold_labels(False)
             .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)))
    return _base(panel, title, description, unit, targets, width=width, height=height,
                 thresholds=thresholds or [(None, GREEN)], min_value=min_value, max_value=max_value)


def bargauge_panel(title: str, description: str, unit: str, targets, *, width: int = 12, height: int = 8,
                   thresholds=None, min_value=0):
    panel = (bargauge.Panel().display_mode(common_models.BarGaugeDisplayMode.GRADIENT)
             .orientation(common_models.VizOrientation.HORIZONTAL)
             .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)))
    return _base(panel, title, description, unit, targets, width=width, height=height,
                 thresholds=thresholds or [(None, GREEN)], min_value=min_value)


def table_panel(title: str, description: str, unit: str, targets, *, width: int = 12, height: int = 8,
                hide: Sequence[str] = ("Time",), mappings=None):
    """A table of instant query results, one row per series (labels as columns)."""
    panel = table.Panel().show_header(True).cell_height(common_models.TableCellHeight.SM)
    if hide:
        panel = panel.with_transformation(models.DataTransformerConfig(
            id_val="organize", options={"excludeByName": {name: True for name in hide}}))
    return _base(panel, title, description, unit, targets, width=width, height=height,
                 thresholds=[(None, GREEN)], mappings=mappings)


def value_mappings(*entries: tuple[int, str, str]) -> list:
    """Exact-value mappings: (value, text, color)."""
    return [models.ValueMap(options={str(value): models.ValueMappingResult(text=text, color=color, index=i)})
            for i, (value, text, color) in enumerate(entries)]


UP_MAPPINGS = value_mappings((0, "down", RED), (1, "up", GREEN))
BREAKER_MAPPINGS = value_mappings((0, "closed", GREEN), (1, "open", RED), (2, "half open", ORANGE))


def up_stat_panel(title: str, description: str, targets, **layout):
    """A stat of a 0/1 reading (``up``, a source or connection flag): red "down" below 1, green "up" at 1."""
    return stat_panel(title, description, STATE, targets, thresholds=[(None, RED), (1, GREEN)],
                      mappings=UP_MAPPINGS, **layout)


# --- dashboard --------------------------------------------------------------

def _variables() -> list:
    datasource = (db.DatasourceVariable("datasource").label("Data source").type("prometheus")
                  .description("The Prometheus that scrapes Sublarr (provisioned with uid "
                               f"{DATASOURCE_UID}).")
                  .current(models.VariableOption(selected=True, text=DATASOURCE_NAME, value=DATASOURCE_UID)))

    def label_variable(name: str, label: str, query: str, description: str):
        return (db.QueryVariable(name).label(label).description(description).datasource(DS)
                .query(query).multi(True).include_all(True).all_value(".*")
                .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
                .sort(models.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
                .current(models.VariableOption(selected=True, text=["All"], value=["$__all"])))

    job = label_variable("job", "Job", "label_values(sublarr_info, job)",
                         "Prometheus job: the scrape job of the app, or service.name of a process "
                         "that pushes through the collector.")
    instance = label_variable("instance", "Instance", 'label_values(sublarr_info{job=~"$job"}, instance)',
                              "One process: host:port when scraped directly, service.instance.id "
                              "when pushed through the collector.")
    traces = (db.DatasourceVariable(TRACES_VARIABLE).label("Traces").type("tempo")
              .description("The trace datasource (Tempo) that exemplars on the latency panels link to. "
                           "Empty until one is provisioned: see monitoring/README.md, Traces from exemplars."))
    return [datasource, job, instance, traces]


def new_dashboard(uid: str, title: str, description: str) -> db.Dashboard:
    """A dashboard with the shared variables, time settings and links to the others."""
    annotations = (db.AnnotationQuery().name("Annotations & Alerts").enable(True).hide(True)
                   .icon_color("rgba(0, 211, 255, 1)").type("dashboard").built_in(1)
                   .datasource(models.DataSourceRef(type_val="grafana", uid="-- Grafana --")))
    links = (db.DashboardLink("Sublarr").type(models.DashboardLinkType.DASHBOARDS).tags(TAGS)
             .as_dropdown(True).include_vars(True).keep_time(True))
    return (db.Dashboard(title).uid(uid).description(description).tags(TAGS)
            .editable().tooltip(models.DashboardCursorSync.CROSSHAIR)
            .time("now-1h", "now").refresh("30s").timezone("browser")
            .variables(_variables()).annotation(annotations).link(links))


def to_dict(builder: db.Dashboard) -> dict:
    """The built dashboard as plain JSON data, panels numbered in order."""
    data = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    next_id = 1
    for panel in data.get("panels", []):
        panel["id"] = next_id
        next_id += 1
        for nested in panel.get("panels", []):
            nested["id"] = next_id
            next_id += 1
    return data
