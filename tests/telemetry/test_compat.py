"""The one private name discovery reads (telemetry._compat) still matches Sublarr's shape,
which the reference app mirrors; when it goes away, discovery says so."""
import pytest

from telemetry import _compat
from telemetry.settings import Settings, SettingsError
from telemetry.state.process import mount_label, read_disks


def test_reference_app_keeps_sublarrs_private_breaker_mapping(tmp_path):
    from refapp import Config
    from refapp.providers import ProviderManager
    manager = ProviderManager(Config.from_env({}, data_dir=str(tmp_path)))
    breakers = _compat.sublarr_breakers(manager)
    assert set(breakers) == set(Config.from_env({}, data_dir=str(tmp_path)).providers)
    assert {b.state.value for b in breakers.values()} == {"closed"}


def test_a_manager_without_it_is_a_shape_change():
    with pytest.raises(_compat.ShapeChanged, match="_circuit_breakers"):
        _compat.sublarr_breakers(object())


def test_disk_entries_carry_their_mount_label(tmp_path):
    assert mount_label(f"config={tmp_path}") == ("config", str(tmp_path))
    assert mount_label(str(tmp_path)) == (str(tmp_path), str(tmp_path))
    assert [d.path for d in read_disks([f"media={tmp_path}", str(tmp_path)]).disks] == ["media", str(tmp_path)]


def test_role_setting():
    assert Settings.from_env({}).role == "auto"
    assert Settings.from_env({"SUBLARR_METRICS_ROLE": "Worker"}).role == "worker"
    with pytest.raises(SettingsError, match="SUBLARR_METRICS_ROLE"):
        Settings.from_env({"SUBLARR_METRICS_ROLE": "both"})
    assert Settings.from_env({}).path_explicit is False
    assert Settings.from_env({"SUBLARR_METRICS_PATH": "/metrics"}).path_explicit is True


# --- OpenTelemetry SDK reader internals ----------------------------------------------------

def _sdk_reader_classes():
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader, PeriodicExportingMetricReader
    return InMemoryMetricReader, PeriodicExportingMetricReader


def test_the_sdk_reader_still_tells_its_temporality_per_instrument():
    from opentelemetry.sdk.metrics import Counter, Histogram
    from opentelemetry.sdk.metrics.export import AggregationTemporality
    InMemoryMetricReader, _ = _sdk_reader_classes()
    reader = InMemoryMetricReader(preferred_temporality={Histogram: AggregationTemporality.DELTA})
    assert _compat.reader_temporality(reader, Histogram) is AggregationTemporality.DELTA
    assert _compat.reader_temporality(reader, Counter) is AggregationTemporality.CUMULATIVE


def test_a_reader_without_the_temporality_table_is_read_as_cumulative_with_a_warning(caplog):
    from opentelemetry.sdk.metrics import Histogram
    from opentelemetry.sdk.metrics.export import AggregationTemporality

    class ChangedReader:
        pass
    with caplog.at_level("WARNING", logger="telemetry._compat"):
        assert _compat.reader_temporality(ChangedReader(), Histogram) is AggregationTemporality.CUMULATIVE
        assert _compat.reader_temporality(ChangedReader(), Histogram) is AggregationTemporality.CUMULATIVE
    assert [r.getMessage() for r in caplog.records] == [
        "sublarr telemetry: ChangedReader has no _instrument_class_temporality (the OpenTelemetry SDK "
        "changed shape); its hot histograms are sent as cumulative"]


def test_the_batch_hook_sees_every_collection_even_an_empty_one():
    from opentelemetry.sdk.metrics import MeterProvider
    InMemoryMetricReader, _ = _sdk_reader_classes()
    seen = []

    class Reader(_compat.CollectedBatchHook, InMemoryMetricReader):
        wants_empty_batches = True

        def adjust_batch(self, metrics_data):
            seen.append(len(metrics_data.resource_metrics))
            return metrics_data

    reader = Reader()
    provider = MeterProvider(metric_readers=[reader])
    assert reader.get_metrics_data() is None  # nothing recorded: the SDK collected nothing, nothing sent
    provider.get_meter("m").create_counter("c").add(2)
    data = reader.get_metrics_data()
    assert [m.name for m in data.resource_metrics[0].scope_metrics[0].metrics] == ["c"]
    assert seen == [0, 1]
    provider.shutdown()


def test_a_reader_base_without_the_hooks_fails_at_class_creation():
    MetricReader = type("MetricReader", (), {"__module__": "opentelemetry.sdk.metrics.changed"})
    with pytest.raises(_compat.ShapeChanged, match="_receive_metrics"):
        type("Reader", (_compat.CollectedBatchHook, MetricReader), {})


def test_the_periodic_reader_still_restarts_through_the_fork_hook():
    _, PeriodicExportingMetricReader = _sdk_reader_classes()
    assert callable(PeriodicExportingMetricReader._at_fork_reinit)
    from telemetry.otlp_reader import ProcessLocalReader
    assert ProcessLocalReader._at_fork_reinit is _compat.NoRestartInForkedChild._at_fork_reinit


def test_a_periodic_reader_without_the_fork_hook_fails_at_class_creation():
    PeriodicExportingMetricReader = type("PeriodicExportingMetricReader", (),
                                         {"__module__": "opentelemetry.sdk.metrics.changed"})
    with pytest.raises(_compat.ShapeChanged, match="_at_fork_reinit"):
        type("Reader", (_compat.NoRestartInForkedChild, PeriodicExportingMetricReader), {})
