"""Config parsing and validation, and database URL handling."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from refapp.config import DEFAULT_PROVIDERS, Config
from refapp.models import make_engine, normalize_url


def test_defaults_use_sqlite_in_created_data_dir(tmp_path):
    data_dir = tmp_path / "data"
    config = Config.from_env(env={"SUBLARR_DATA_DIR": str(data_dir)})

    assert data_dir.is_dir()
    assert config.database_url == f"sqlite:///{data_dir / 'sublarr.db'}"
    assert config.redis_url is None
    assert config.providers == DEFAULT_PROVIDERS
    assert (config.latency_scale, config.failure_rate, config.seed) == (1.0, 0.1, None)
    assert (config.queue_workers, config.rq_queue_name) == (2, "sublarr")


def test_reads_every_variable(tmp_path):
    env = {
        "SUBLARR_DATABASE_URL": "postgresql://u:p@db/sublarr",
        "SUBLARR_REDIS_URL": "redis://redis:6379/0",
        "SUBLARR_PROVIDERS": " subdl, animetosho ,",
        "SUBLARR_SIM_LATENCY_SCALE": "0",
        "SUBLARR_SIM_FAILURE_RATE": "0.5",
        "SUBLARR_SIM_SEED": "42",
        "SUBLARR_QUEUE_WORKERS": "4",
        "SUBLARR_RQ_QUEUE_NAME": "subs",
        "SUBLARR_DATA_DIR": str(tmp_path / "unused"),
    }
    config = Config.from_env(env=env)

    assert config.database_url == "postgresql://u:p@db/sublarr"
    assert config.redis_url == "redis://redis:6379/0"
    assert config.providers == ("subdl", "animetosho")
    assert (config.latency_scale, config.failure_rate, config.seed) == (0.0, 0.5, 42)
    assert (config.queue_workers, config.rq_queue_name) == (4, "subs")
    # An explicit database URL means the data dir is not needed, so not created.
    assert not (tmp_path / "unused").exists()


def test_overrides_win_over_environment(tmp_path):
    env = {"SUBLARR_SIM_FAILURE_RATE": "0.9", "SUBLARR_DATA_DIR": str(tmp_path)}
    config = Config.from_env(env=env, failure_rate=0.0, providers=["a", "b"])
    assert config.failure_rate == 0.0
    assert config.providers == ("a", "b")


@pytest.mark.parametrize(
    ("variable", "value", "accepted"),
    [
        ("SUBLARR_SIM_LATENCY_SCALE", "fast", "number"),
        ("SUBLARR_SIM_LATENCY_SCALE", "-1", ">= 0"),
        ("SUBLARR_SIM_FAILURE_RATE", "1.5", "between 0 and 1"),
        ("SUBLARR_SIM_FAILURE_RATE", "nan", "between 0 and 1"),
        ("SUBLARR_SIM_SEED", "1.5", "integer"),
        ("SUBLARR_QUEUE_WORKERS", "0", ">= 1"),
        ("SUBLARR_PROVIDERS", "Open Subtitles", "lower-case"),
        ("SUBLARR_PROVIDERS", "subdl,subdl", "without duplicates"),
        ("SUBLARR_PORT", "99999", "port"),
    ],
)
def test_invalid_values_name_the_variable(tmp_path, variable, value, accepted):
    with pytest.raises(ValueError) as info:
        Config.from_env(env={variable: value, "SUBLARR_DATA_DIR": str(tmp_path)})
    assert variable in str(info.value)
    assert accepted in str(info.value)


def test_invalid_override_names_the_variable(tmp_path):
    with pytest.raises(ValueError, match="SUBLARR_SIM_FAILURE_RATE"):
        Config.from_env(env={"SUBLARR_DATA_DIR": str(tmp_path)}, failure_rate=2)


def test_unknown_override_is_rejected(tmp_path):
    with pytest.raises(TypeError, match="colour"):
        Config.from_env(env={"SUBLARR_DATA_DIR": str(tmp_path)}, colour="blue")


def test_config_is_frozen(make_config):
    config = make_config()
    with pytest.raises(AttributeError):
        config.failure_rate = 1.0


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg"),
        ("postgres://u@h/db", "postgresql+psycopg"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg2"),
        ("sqlite:////tmp/x.db", "sqlite"),
    ],
)
def test_postgres_urls_use_psycopg3(url, driver):
    assert normalize_url(url).drivername == driver


def test_sqlite_engine_uses_wal(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 5000
    finally:
        engine.dispose()
