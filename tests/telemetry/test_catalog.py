"""The catalog keeps the committed contract (tests/golden/contract.json) and its own invariants."""
import json
import re

import pytest
from opentelemetry.metrics import Observation
from prometheus_client import CollectorRegistry, generate_latest

from harness.support import REPO, label_sets, parse
from telemetry import catalog
from telemetry.catalog import Kind
from telemetry.meter_provider import build_meter_provider, build_prometheus_reader

CONTRACT = REPO / "tests" / "golden" / "contract.json"


def contract():
    """The promised surface (docs/metrics.md), one entry per family.

    Written out once from the catalog and checked by hand; edit it only for an
    intended contract change. ``labels`` maps each key, in order, to its closed
    value set or ``"open"``; ``core`` marks the original set, the rest are
    additions.
    """
    return json.loads(CONTRACT.read_text(encoding="utf-8"))


def test_catalog_matches_contract():
    entries = contract()
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names))
    assert sum(e["core"] for e in entries) >= 29
    assert [f.name for f in catalog.FAMILIES] == names, \
        f"families added or removed: update {CONTRACT.relative_to(REPO)} and docs/metrics.md"
    for entry in entries:
        family = catalog.family(entry["name"])
        assert family.kind.value == entry["type"], family.name
        assert family.unit == entry["unit"], family.name
        assert family.label_keys == tuple(entry["labels"]), family.name
        for label in family.labels:
            values = sorted(label.values) if label.values is not None else "open"
            assert values == entry["labels"][label.key], f"{family.name}.{label.key}"
        assert (list(family.buckets) if family.buckets else None) == entry.get("buckets"), family.name
        if not entry["core"]:
            # Additions beyond the original set are grouped as such in the catalog.
            assert family.group in ("jobs", "telemetry"), family.name


def test_catalog_invariants():
    names = [f.name for f in catalog.FAMILIES]
    assert len(names) == len(set(names))
    for f in catalog.FAMILIES:
        assert re.fullmatch(r"sublarr_[a-z0-9_]+", f.name), f.name
        assert f.description.strip(), f.name
        assert (f.kind is Kind.COUNTER) == f.name.endswith("_total"), f.name
        assert (f.kind is Kind.HISTOGRAM) == (f.buckets is not None), f.name
        if f.buckets:
            assert list(f.buckets) == sorted(set(f.buckets)), f.name
        unit_suffix = {"s": "_seconds", "By": "_bytes", "%": "_percent"}.get(f.unit)
        if unit_suffix:
            assert f.name.endswith(unit_suffix), f"{f.name}: unit {f.unit} needs {unit_suffix}"
        else:
            assert f.unit == "", f"{f.name}: unit {f.unit!r} would add a suffix"
        keys = f.label_keys
        assert len(keys) == len(set(keys)), f.name
        for label in f.labels:
            bounds = [label.values is not None, label.pattern is not None, label.dynamic]
            assert sum(bounds) == 1, f"{f.name}.{label.key} needs exactly one bound"


def test_every_family_renders_with_contract_name_labels_and_buckets():
    """Instruments built the catalog's way come out of the bridge under the contract names."""
    registry = CollectorRegistry(auto_describe=False)
    provider = build_meter_provider([build_prometheus_reader(registry)])
    meter = provider.get_meter(catalog.METER_NAME)
    for f in catalog.FAMILIES:
        attrs = {key: "x" for key in f.label_keys}
        attrs["unexpected"] = "dropped by the view"
        if f.kind is Kind.HISTOGRAM:
            meter.create_histogram(f.instrument_name, unit=f.unit).record(0.2, attrs)
        elif f.kind is Kind.COUNTER:
            meter.create_counter(f.instrument_name, unit=f.unit).add(1, attrs)
        else:
            meter.create_observable_gauge(f.instrument_name, unit=f.unit,
                                          callbacks=[lambda o, a=attrs: [Observation(1, a)]])
    text = generate_latest(registry).decode()
    families = parse(text)
    for f in catalog.FAMILIES:
        base = f.name[: -len("_total")] if f.kind is Kind.COUNTER else f.name
        assert base in families, f"{f.name} missing from:\n{text}"
        assert f"# TYPE {f.name} {f.kind.value}\n" in text
        for sample_name in f.sample_names():
            sets = label_sets(text, sample_name)
            assert sets, sample_name
            for labels in sets:
                keys = {k for k, _ in labels} - {"le"}
                assert keys == set(f.label_keys), (sample_name, keys)
        if f.buckets:
            les = {dict(s)["le"] for s in label_sets(text, f.name + "_bucket")}
            assert les == {str(b) for b in f.buckets} | {"+Inf"}
    assert "otel_scope" not in text and "target_info" not in text
    provider.shutdown()


@pytest.mark.parametrize("raw,expected", [("ASS", "ass"), ("srt", "srt"), ("docx", "other")])
def test_bounded_closed_label(raw, expected):
    from telemetry.bounds import BoundedValues
    assert BoundedValues(catalog.family("sublarr_translation_total").label("format"))(raw) == expected


def test_bounded_dynamic_label_caps_new_values():
    from telemetry.bounds import BoundedValues
    label = catalog.family("sublarr_provider_search_total").label("provider")
    bound = BoundedValues(label, seed=["opensubtitles"])
    seen = {bound(f"p{i}") for i in range(label.cap * 3)}
    assert len(seen - {"other"}) == label.cap - 1  # the seed took one slot
    assert bound("opensubtitles") == "opensubtitles" and "other" in seen


def test_the_source_label_bound_is_the_callback_layers_sources():
    """``sublarr_telemetry_source_*{source}`` is closed: a source added to the layer must be added here too."""
    from opentelemetry.sdk.metrics import MeterProvider

    from telemetry.state.callbacks import CallbackLayer, StateTargets

    provider = MeterProvider()
    try:
        layer = CallbackLayer(provider.get_meter("sources-test"), StateTargets())
        assert set(layer.sources) == catalog.SOURCES
    finally:
        provider.shutdown()
