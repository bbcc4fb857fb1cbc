"""Helpers shared by the tests: scraping, parsing, real-tool discovery."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.net import free_port, wait_for  # noqa: F401 - the tests import them from here too

REPO = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str) -> None:
    """A real component is missing: fail under CI, skip with the reason elsewhere."""
    message = f"{what} (scripts/ensure-tools installs it; CI must have it)"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


CLI = (sys.executable, "-m", "telemetry.cli")
"""The ``sublarr-telemetry`` command, run by the interpreter running the tests."""


def venv_executable(name: str) -> str:
    """A console script installed beside the running interpreter (any virtualenv, not only .venv)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.fail(f"{name} is not installed beside {sys.executable} (scripts/bootstrap installs it)")
    return str(path)


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not on PATH")
    return path


def parse(text: str) -> dict:
    """Families by name -> list of (sample name, labels dict, value)."""
    out = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[family.name].append((sample.name, dict(sample.labels), sample.value))
    return dict(out)


def sample_value(text: str, name: str, labels: dict | None = None) -> float | None:
    labels = labels or {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and dict(sample.labels) == labels:
                return sample.value
    return None


def samples(text: str, name: str, **match: str) -> list[tuple[dict, float]]:
    """(labels, value) of every sample called ``name`` whose labels include ``match``."""
    return [(dict(sample.labels), sample.value)
            for family in text_string_to_metric_families(text) for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in match.items())]


def total(text: str, name: str, **match: str) -> float:
    """The sum of the samples ``samples(text, name, **match)`` finds."""
    return sum(value for _, value in samples(text, name, **match))


def disk_used_percent(path) -> float:
    """What ``sublarr_disk_usage_percent`` should say for ``path`` now (compare with
    ``pytest.approx(abs=1)``: other programs write to the same disk meanwhile)."""
    usage = shutil.disk_usage(path)
    return 100.0 * usage.used / usage.total


def rss_bytes() -> int:
    """This process's resident set size as the kernel reports it (``VmRSS``), for comparing
    ``sublarr_memory_usage_bytes`` of an app embedded in the test process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def label_sets(text: str, sample_name: str) -> set[frozenset]:
    sets = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == sample_name:
                sets.add(frozenset(sample.labels.items()))
    return sets


def scrape(client, path: str = "/metrics", **request) -> str:
    """The exposition a Flask test client gets from ``path`` (``request``: headers, query_string...)."""
    response = client.get(path, **request)
    assert response.status_code == 200, response.data[:500]
    return response.get_data(as_text=True)


def terminate(process, timeout: float = 20.0) -> None:
    """SIGTERM a subprocess (its whole group when it leads one), SIGKILL after ``timeout``."""
    import signal

    if process.poll() is not None:
        return
    group = os.getpgid(process.pid) == process.pid
    (os.killpg if group else os.kill)(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        (os.killpg if group else os.kill)(process.pid, signal.SIGKILL)
        process.wait()


class ScriptedClock:
    """A perf_counter stand-in: each request lasts the next scripted duration."""

    def __init__(self, durations):
        self._durations = list(durations)
        self._now = 1000.0
        self._started = False

    def __call__(self) -> float:
        if self._started:
            self._now += self._durations.pop(0)
        self._started = not self._started
        return self._now


def catalog_label_problems(text: str, dynamic: dict[str, set[str]] | None = None) -> list[str]:
    """Every sublarr_* sample checked against the catalog: family, label keys, label values.

    ``dynamic`` gives the run-time sets of dynamic labels (endpoint -> route
    templates, provider -> configured names, mount -> configured paths).
    """
    from telemetry import catalog
    from telemetry.catalog import Kind

    dynamic = dynamic or {}
    problems = []
    by_sample = {}
    for family in catalog.FAMILIES:
        for sample_name in family.sample_names():
            by_sample[sample_name] = family
    for parsed in text_string_to_metric_families(text):
        for sample in parsed.samples:
            if not sample.name.startswith("sublarr_"):
                continue
            family = by_sample.get(sample.name)
            if family is None:
                problems.append(f"{sample.name}: not in the catalog")
                continue
            labels = dict(sample.labels)
            if family.kind is Kind.HISTOGRAM and sample.name.endswith("_bucket"):
                labels.pop("le", None)
            if set(labels) != set(family.label_keys):
                problems.append(f"{sample.name}: labels {sorted(labels)} != {sorted(family.label_keys)}")
                continue
            for key, value in labels.items():
                label = family.label(key)
                allowed = label.allows(value)
                if label.dynamic and key in dynamic:
                    allowed = value in dynamic[key] or value == label.fallback
                if not allowed:
                    problems.append(f"{sample.name}: {key}={value!r} outside '{label.bound}'")
    return problems
