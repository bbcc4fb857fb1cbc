"""The tiny HTTP app of tests/harness/flask_apps.py as a fixture."""
import pytest

from harness.flask_apps import build_app


@pytest.fixture
def http_app():
    app, telemetry = build_app()
    yield app, telemetry
    telemetry.shutdown()
