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
