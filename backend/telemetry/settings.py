"""Settings read from the environment and validated once, at start-up.

This module's own switches use ``SUBLARR_METRICS_*``; the service identity
uses the standard ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` (read by
the SDK's resource detector) and the exporter choice ``OTEL_METRICS_EXPORTER``;
tracing (off by default) the standard ``OTEL_TRACES_EXPORTER`` and
``OTEL_TRACES_SAMPLER``/``OTEL_TRACES_SAMPLER_ARG``. Every variable, its
default and what it accepts is one entry of :data:`telemetry.variables.VARIABLES`;
the defaults below are taken from there.
An invalid value raises :class:`SettingsError` naming the variable and what it
accepts: a typo in a monitoring switch should stop the start, not silently
leave the app unobserved.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace

from .parsers import LISTEN_ACCEPTED
from .variables import FIELD_DEFAULTS as _DEFAULTS, MIN_EXPORT_INTERVAL_MS, SettingsError, check_auth, read_fields


@dataclass(frozen=True)
class Settings:
    """What the module does, decided before anything is instrumented."""

    enabled: bool = _DEFAULTS["enabled"]
    path: str = _DEFAULTS["path"]
    exclude_paths: tuple[str, ...] = _DEFAULTS["exclude_paths"]
    exclude_static: bool = _DEFAULTS["exclude_static"]
    exporters: tuple[str, ...] = _DEFAULTS["exporters"]
    providers: tuple[str, ...] = _DEFAULTS["providers"]
    redis_url: str | None = _DEFAULTS["redis_url"]
    disk_paths: tuple[str, ...] = _DEFAULTS["disk_paths"]
    source_timeout: float = _DEFAULTS["source_timeout"]
    otlp_protocol: str = _DEFAULTS["otlp_protocol"]
    export_interval_ms: float | None = _DEFAULTS["export_interval_ms"]
    job_functions: tuple[str, ...] = _DEFAULTS["job_functions"]
    max_series: int = _DEFAULTS["max_series"]
    auth: str = _DEFAULTS["auth"]
    token: str | None = field(default=_DEFAULTS["token"], repr=False)
    username: str = _DEFAULTS["username"]
    password: str | None = field(default=_DEFAULTS["password"], repr=False)
    listen: tuple[str, int] | None = _DEFAULTS["listen"]
    # Tracing (telemetry.tracing): off unless OTEL_TRACES_EXPORTER names an exporter.
    traces_exporters: tuple[str, ...] = _DEFAULTS["traces_exporters"]
    traces_protocol: str = _DEFAULTS["traces_protocol"]
    traces_sampler: str = _DEFAULTS["traces_sampler"]
    traces_sampler_ratio: float = _DEFAULTS["traces_sampler_ratio"]
    keep_semconv_metrics: bool = _DEFAULTS["keep_semconv_metrics"]
    sql_commenter: bool = _DEFAULTS["sql_commenter"]
    # OTLP only: exponential (native) duration histograms besides or instead of the classic ones.
    native_histograms: str = _DEFAULTS["native_histograms"]
    # An explicit path is always served, and may name one of the app's own routes
    # (telemetry then serves it). From the environment: SUBLARR_METRICS_PATH is set;
    # unset, an app with its own metrics route keeps it as the only one.
    path_explicit: bool = True
    # Which process reports shared state (queue, database, Redis): "auto" is
    # "worker" in a process that runs a telemetry RQ worker, else "web".
    role: str = _DEFAULTS["role"]

    def __post_init__(self):
        """Settings built in code obey the rule the environment does: a credential is never ignored."""
        check_auth(self.auth, self.token, self.password)

    @property
    def tracing(self) -> bool:
        return self.enabled and bool(self.traces_exporters)

    @property
    def serve_metrics(self) -> bool:
        return self.enabled and "prometheus" in self.exporters

    @property
    def push(self) -> bool:
        return self.enabled and "otlp" in self.exporters

    def with_overrides(self, **changes) -> "Settings":
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        return cls(**read_fields(os.environ if env is None else env, (f.name for f in fields(cls))))


__all__ = ["LISTEN_ACCEPTED", "MIN_EXPORT_INTERVAL_MS", "Settings", "SettingsError"]
