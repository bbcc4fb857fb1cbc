"""Finding what to observe on a Flask app, the way Sublarr wires things.

Sublarr keeps its cache backend and job queue as plain app attributes
(``app.cache_backend``, ``app.job_queue``) and its engine in Flask-SQLAlchemy.
Each getter looks the object up when called, so attributes attached after
``init_telemetry`` are still found; an explicit object (or a zero-argument
callable) given to :class:`~telemetry.Telemetry` always wins.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

Getter = Callable[[], Any]


def _explicit(value: Any) -> Getter | None:
    if value is None:
        return None
    if callable(value) and not hasattr(value, "get_stats") and not hasattr(value, "enqueue") \
            and not hasattr(value, "dialect") and not hasattr(value, "items"):
        return value
    return lambda: value


def engine_getter(app, explicit: Any = None) -> Getter:
    found = _explicit(explicit)
    if found is not None:
        return found
    cached: list = []

    def find():
        if cached:
            return cached[0]
        engine = getattr(app, "db_engine", None) or _flask_sqlalchemy_engine(app)
        if engine is not None:
            cached.append(engine)
        return engine
    return find


def _flask_sqlalchemy_engine(app) -> Any:
    db = app.extensions.get("sqlalchemy")
    if db is None:
        return None
    try:
        with app.app_context():
            return db.engine
    except Exception:  # not configured yet
        return None


def attribute_getter(app, name: str, explicit: Any = None) -> Getter:
    found = _explicit(explicit)
    return found if found is not None else (lambda: getattr(app, name, None))


def breakers_getter(app, explicit: Any = None) -> Getter:
    """A mapping provider name -> breaker, from ``app.provider_manager`` by default."""
    found = _explicit(explicit)
    if found is not None:
        return found

    def find():
        manager = getattr(app, "provider_manager", None)
        breakers = getattr(manager, "breakers", None) if manager is not None else None
        if breakers is None and manager is not None:
            breakers = getattr(manager, "circuit_breakers", None)
        return breakers
    return find


def version_of(app, explicit: str | None = None) -> str:
    if explicit:
        return explicit
    for key in ("SUBLARR_VERSION", "VERSION"):
        if app.config.get(key):
            return str(app.config[key])
    return "unknown"
