"""PromQL for the rules, built from catalog families.

A rule names a family through :func:`family` (a KeyError for a name the
catalog lacks), and each helper accepts only the kind it makes sense for: a
rate of a counter, a quantile of a histogram's buckets, a gauge read as it
is. So a rule cannot select a series the app does not expose, nor a bare
histogram name that selects nothing.
"""
from __future__ import annotations

from typing import Sequence

from telemetry import catalog
from telemetry.catalog import Family, Kind

RATE_WINDOW = "5m"
"""The window of every recorded rate and quantile (the ``5m`` of ``rate5m``)."""

JOB = ("job",)
"""The level every rule keeps: one Sublarr deployment's processes of one kind."""


def family(name: str) -> Family:
    """The catalog family ``name``."""
    return catalog.family(name)


def _expect(fam: Family, kind: Kind) -> None:
    if fam.kind is not kind:
        raise ValueError(f"{fam.name} is a {fam.kind.value}, not a {kind.value}")


def selector(name: str, matchers: str = "") -> str:
    return f"{name}{{{matchers}}}" if matchers else name


def aggregate(op: str, labels: Sequence[str], inner: str) -> str:
    """``op by (labels) (inner)``."""
    return f"{op} by ({', '.join(labels)}) ({inner})"


def rate(counter: Family, matchers: str = "", window: str = RATE_WINDOW) -> str:
    _expect(counter, Kind.COUNTER)
    return f"rate({selector(counter.name, matchers)}[{window}])"


def summed_rate(counter: Family, labels: Sequence[str], matchers: str = "") -> str:
    """A counter's rate added up over processes (each process counts its own)."""
    return aggregate("sum", labels, rate(counter, matchers))


def quantile(q: float, histogram: Family, labels: Sequence[str], window: str = RATE_WINDOW) -> str:
    """``histogram_quantile`` over the bucket rates summed by ``labels`` and ``le``.

    Grouping by ``le`` (never matching it by value) works whichever way the
    store spells the bounds (``le="1"`` or ``le="1.0"``).
    """
    _expect(histogram, Kind.HISTOGRAM)
    buckets = f"rate({histogram.name}_bucket[{window}])"
    return f"histogram_quantile({q}, {aggregate('sum', (*labels, 'le'), buckets)})"


def gauge(fam: Family, function: str = "", window: str = "") -> str:
    """A gauge as stored, or ``function(gauge[window])`` (``min_over_time``, ``delta``)."""
    _expect(fam, Kind.GAUGE)
    if not function:
        return fam.name
    return f"{function}({fam.name}[{window}])"


def one_reading(fam: Family, labels: Sequence[str], inner: str) -> str:
    """``max`` over processes of a gauge the catalog marks shared: every process
    reads the same queue or server, so a sum would count it once per process."""
    if not fam.shared:
        raise ValueError(f"{fam.name} is reported by each process about itself; it is not shared state")
    return aggregate("max", labels, inner)


def record_name(labels: Sequence[str], metric: str, operation: str) -> str:
    """``level:metric:operations``; the level names the labels the rule keeps."""
    return f"{'_'.join(labels)}:{metric}:{operation}"


def counter_metric(counter: Family) -> str:
    """The metric part of a recorded rate: the counter's name without ``_total``."""
    _expect(counter, Kind.COUNTER)
    return counter.name.removesuffix("_total")
