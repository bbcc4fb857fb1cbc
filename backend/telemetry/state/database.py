"""Database state: pool occupancy, backend, size, and counts on telemetry's own connection."""
from __future__ import annotations

import os
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool, QueuePool


@dataclass(frozen=True)
class PoolReading:
    size: int
    checked_out: int
    overflow: int


@dataclass(frozen=True)
class DatabaseReading:
    """What one visit to the database found; ``errors`` names parts that failed."""

    dialect: str
    size_bytes: int | None
    errors: tuple[str, ...] = ()


def read_pool(engine: Engine) -> PoolReading | None:
    """Occupancy of a sized pool; None for pools without a size (Null, Static, SingletonThread)."""
    pool = engine.pool
    if not isinstance(pool, QueuePool):
        return None
    return PoolReading(size=pool.size(), checked_out=pool.checkedout(), overflow=pool.overflow())


def sqlite_file(engine: Engine) -> str | None:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def sqlite_size(path: str) -> int:
    """The database file plus its write-ahead log, which holds committed pages too."""
    size = os.path.getsize(path)
    wal = path + "-wal"
    if os.path.exists(wal):
        size += os.path.getsize(wal)
    return size


def make_probe_engine(engine: Engine, timeout_seconds: float = 2.0) -> Engine:
    """A separate, unpooled engine for telemetry's own queries.

    It keeps those queries out of the app's pool (whose occupancy we report)
    and out of the app's query metrics, and bounds them with its own timeouts.
    """
    from sqlalchemy import create_engine

    connect_args: dict = {}
    if engine.dialect.name == "postgresql":
        millis = int(timeout_seconds * 1000)
        connect_args = {"connect_timeout": max(1, int(timeout_seconds)),
                        "options": f"-c statement_timeout={millis} -c lock_timeout={millis}"}
    elif engine.dialect.name == "sqlite":
        connect_args = {"timeout": timeout_seconds}
    return create_engine(engine.url, poolclass=NullPool, connect_args=connect_args)


def read_database(engine: Engine, probe: Engine) -> DatabaseReading:
    """Dialect and size; a failing size query is reported in ``errors``, not raised."""
    dialect = engine.dialect.name
    errors: list[str] = []
    size: int | None = None
    path = sqlite_file(engine)
    if path is not None:
        try:
            size = sqlite_size(path)
        except OSError as exc:
            errors.append(f"size: {exc}")
    if dialect == "postgresql":
        with probe.connect() as connection:  # an unreachable database raises: the source is down
            try:
                size = int(connection.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                errors.append(f"size: {type(exc).__name__}: {exc}".splitlines()[0])
    return DatabaseReading(dialect=dialect, size_bytes=size, errors=tuple(errors))


def read_count(probe: Engine, sql: str) -> int:
    """One count query on the probe engine; errors propagate (the source goes down)."""
    with probe.connect() as connection:
        return int(connection.execute(text(sql)).scalar_one())
