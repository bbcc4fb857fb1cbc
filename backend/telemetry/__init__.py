"""Sublarr telemetry: OpenTelemetry metrics served as the ``sublarr_*`` contract.

Adopt it in an app factory with one call::

    from telemetry import init_telemetry
    init_telemetry(app)

Only Flask is needed to import this package; the OpenTelemetry SDK is loaded
when an app is initialised (see :mod:`telemetry.extension`).
"""
from .__meta__ import VERSION as __version__
from .extension import (
    Telemetry,
    TelemetryConfigError,
    TelemetryWarning,
    init_telemetry,
)
from .settings import Settings, SettingsError
from .state.targets import StateTargets

__all__ = [
    "Settings",
    "SettingsError",
    "StateTargets",
    "Telemetry",
    "TelemetryConfigError",
    "TelemetryWarning",
    "__version__",
    "init_telemetry",
]
