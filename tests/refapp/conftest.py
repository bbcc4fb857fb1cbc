"""Fixtures for the reference app on SQLite and the in-memory backends."""
from __future__ import annotations

from functools import partial

import pytest

from harness.net import wait_for
from refapp.app import create_app
from refapp.config import Config


@pytest.fixture
def make_config(tmp_path):
    """Config without environment input: SQLite in tmp_path, no sleeps, no failures."""

    def make(**overrides) -> Config:
        values = {
            "database_url": f"sqlite:///{tmp_path / 'refapp.db'}",
            "data_dir": str(tmp_path),
            "latency_scale": 0.0,
            "failure_rate": 0.0,
            "seed": 1,
        }
        values.update(overrides)
        return Config.from_env(env={}, **values)

    return make


@pytest.fixture
def make_app(make_config):
    apps = []

    def make(**overrides):
        app = create_app(make_config(**overrides), telemetry=False)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.job_queue.shutdown(wait=True)
        app.db_engine.dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def wait_until():
    """Polls a predicate until it is truthy (5 s, every 10 ms)."""
    return partial(wait_for, timeout=5.0, interval=0.01)
