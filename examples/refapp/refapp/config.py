"""Settings for the reference app, read once from ``SUBLARR_*`` variables.

A frozen dataclass so that every component sees the same values for the life of
the process; tests build one with ``Config.from_env(env={}, **overrides)``.
State goes under the system temp dir by default because the container image
runs with a read-only root filesystem.
"""
from __future__ import annotations

import math
import os
import re
import tempfile
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

DEFAULT_PROVIDERS = ("opensubtitles", "podnapisi", "subdl", "animetosho")
DEFAULT_DATA_DIR = os.path.join(tempfile.gettempdir(), "sublarr-refapp")

# Field name -> environment variable, so errors name what the operator set.
ENV_VARS = {
    "database_url": "SUBLARR_DATABASE_URL",
    "redis_url": "SUBLARR_REDIS_URL",
    "providers": "SUBLARR_PROVIDERS",
    "latency_scale": "SUBLARR_SIM_LATENCY_SCALE",
    "failure_rate": "SUBLARR_SIM_FAILURE_RATE",
    "seed": "SUBLARR_SIM_SEED",
    "queue_workers": "SUBLARR_QUEUE_WORKERS",
    "rq_queue_name": "SUBLARR_RQ_QUEUE_NAME",
    "data_dir": "SUBLARR_DATA_DIR",
    "host": "SUBLARR_HOST",
    "port": "SUBLARR_PORT",
    "api_key": "SUBLARR_API_KEY",
}

# Provider names end up in URLs and metric labels: keep them plain.
_PROVIDER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def _invalid(name: str, accepted: str, value: Any) -> ValueError:
    return ValueError(f"{ENV_VARS[name]} ({name}) must be {accepted}, got {value!r}")


@dataclass(frozen=True)
class Config:
    """Everything the app needs to know about its environment."""

    database_url: str
    redis_url: str | None = None
    providers: tuple[str, ...] = DEFAULT_PROVIDERS
    latency_scale: float = 1.0
    failure_rate: float = 0.1
    seed: int | None = None
    queue_workers: int = 2
    rq_queue_name: str = "sublarr"
    data_dir: str = DEFAULT_DATA_DIR
    host: str = "127.0.0.1"
    port: int = 5000
    api_key: str = field(default="", repr=False)  # guards /api/ (empty: no auth), as Sublarr's

    def __post_init__(self) -> None:
        # Validate here too, so overrides and direct construction are checked
        # exactly like values that came from the environment.
        object.__setattr__(self, "providers", tuple(self.providers))
        if not self.database_url:
            raise _invalid("database_url", "a SQLAlchemy database URL", self.database_url)
        if not self.providers or not all(_PROVIDER_NAME.match(p) for p in self.providers):
            raise _invalid(
                "providers",
                "a non-empty comma list of lower-case names ([a-z0-9_-])",
                ",".join(self.providers),
            )
        if len(set(self.providers)) != len(self.providers):
            raise _invalid("providers", "a list without duplicates", ",".join(self.providers))
        if not (math.isfinite(self.latency_scale) and self.latency_scale >= 0):
            raise _invalid("latency_scale", "a number >= 0 (0 disables sleeps)", self.latency_scale)
        if not (0.0 <= self.failure_rate <= 1.0):
            raise _invalid("failure_rate", "a probability between 0 and 1", self.failure_rate)
        if self.queue_workers < 1:
            raise _invalid("queue_workers", "an integer >= 1", self.queue_workers)
        if not self.rq_queue_name:
            raise _invalid("rq_queue_name", "a non-empty queue name", self.rq_queue_name)
        if not (0 <= self.port <= 65535):
            raise _invalid("port", "a TCP port between 0 and 65535", self.port)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "Config":
        """Read ``SUBLARR_*`` variables from ``env`` (default ``os.environ``).

        Keyword ``overrides`` take precedence over the environment and are
        validated the same way. Raises ``ValueError`` naming the variable and
        what it accepts when a value is invalid.
        """
        env = os.environ if env is None else env
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown Config field(s): {', '.join(sorted(unknown))}")

        def raw(name: str) -> str | None:
            value = env.get(ENV_VARS[name])
            return value.strip() if value is not None and value.strip() else None

        values: dict[str, Any] = {}
        if (v := raw("redis_url")) is not None:
            values["redis_url"] = v
        if (v := raw("providers")) is not None:
            values["providers"] = tuple(p.strip() for p in v.split(",") if p.strip())
        for name in ("latency_scale", "failure_rate"):
            if (v := raw(name)) is not None:
                values[name] = _parse(name, v, float, "a number")
        for name in ("seed", "queue_workers", "port"):
            if (v := raw(name)) is not None:
                values[name] = _parse(name, v, int, "an integer")
        for name in ("rq_queue_name", "host", "api_key"):
            if (v := raw(name)) is not None:
                values[name] = v
        values.update(overrides)

        values.setdefault("data_dir", raw("data_dir") or DEFAULT_DATA_DIR)
        if "database_url" not in values:
            values["database_url"] = raw("database_url") or _default_database_url(values["data_dir"])
        return cls(**values)


def _parse(name: str, text: str, kind: type, accepted: str) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise _invalid(name, accepted, text) from None


def _default_database_url(data_dir: str) -> str:
    """SQLite file in the data dir; the dir is created only when it is used."""
    try:
        os.makedirs(data_dir, exist_ok=True)
    except OSError as exc:
        raise ValueError(
            f"{ENV_VARS['data_dir']} (data_dir) must be a writable directory, "
            f"got {data_dir!r}: {exc.strerror}"
        ) from None
    return "sqlite:///" + os.path.join(data_dir, "sublarr.db")
