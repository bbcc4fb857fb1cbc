"""Finding what to observe on a Flask app, the way Sublarr wires things.

Sublarr keeps its cache backend and job queue as plain app attributes
(``app.cache_backend``, ``app.job_queue``), its engine in Flask-SQLAlchemy,
its provider manager in ``app.extensions["provider_manager"]``, its version
in ``version.py`` beside ``app.py`` and its queue counts in ``db.jobs`` and
``db.wanted``.
Each getter looks the object up when called, so attributes attached after
``init_telemetry`` are still found; a getter given in
:class:`~telemetry.StateTargets` always wins.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from . import _compat

_log = logging.getLogger(__name__)

Getter = Callable[[], Any]


def getter_for(value: Any) -> Getter | None:
    """A getter for an object handed over as itself or as a zero-argument callable
    (the keywords of ``init_telemetry``); None stays None. Engines, caches, queues
    and breaker mappings are recognised by their shape even when callable."""
    if value is None:
        return None
    if callable(value) and not hasattr(value, "get_stats") and not hasattr(value, "enqueue") \
            and not hasattr(value, "dialect") and not hasattr(value, "items"):
        return value
    return lambda: value


def engine_getter(app, given: Getter | None = None) -> Getter:
    if given is not None:
        return given
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


def attribute_getter(app, name: str, given: Getter | None = None) -> Getter:
    return given if given is not None else (lambda: getattr(app, name, None))


class Missing:
    """Discovery found the host's object but not in a shape it can read.

    The source it feeds is then configured and fails with ``reason``, so
    ``sublarr_telemetry_source_up`` says 0 instead of a family going quiet.
    """

    def __init__(self, reason: str):
        self.reason = reason


def _provider_manager(app) -> Any:
    """Sublarr registers it as ``app.extensions["provider_manager"]``; older
    shapes (and the reference app before it) as ``app.provider_manager``."""
    manager = app.extensions.get("provider_manager")
    return manager if manager is not None else getattr(app, "provider_manager", None)


def breakers_getter(app, given: Getter | None = None) -> Getter:
    """A mapping provider name -> breaker, from the app's provider manager.

    Public ``breakers``/``circuit_breakers`` mappings first, then Sublarr's
    private ``_circuit_breakers`` (see :mod:`telemetry._compat`). A manager
    with neither gives :class:`Missing`.
    """
    if given is not None:
        return given

    def find():
        manager = _provider_manager(app)
        if manager is None:
            return None
        for name in ("breakers", "circuit_breakers"):
            breakers = getattr(manager, name, None)
            if isinstance(breakers, Mapping):
                return breakers
        try:
            return _compat.sublarr_breakers(manager)
        except _compat.ShapeChanged as exc:
            return Missing(str(exc))
    return find


# Sublarr's own functions for the two database queue gauges, as its metrics
# module called them: module (beside the app, or in the app's package), function,
# and how to get the number from what it returns.
HOST_COUNTS: dict[str, tuple[str, str, Callable[[Any], Any]]] = {
    "sublarr_job_queue_size": ("db.jobs", "get_pending_job_count", lambda value: value),
    "sublarr_wanted_queue_size": ("db.wanted", "get_wanted_summary", lambda value: value["wanted"]),
}


def host_count(app, family: str) -> Callable[[], int] | None:
    """The host's own count for ``family`` when its module is loaded, else None.

    Only modules already imported are used (``sys.modules``): discovery never
    imports a host module that the host itself did not.
    """
    module_name, function_name, pick = HOST_COUNTS[family]
    package = app.import_name.rpartition(".")[0]
    for candidate in ([f"{package}.{module_name}"] if package else []) + [module_name]:
        function = getattr(sys.modules.get(candidate), function_name, None)
        if callable(function):
            return lambda: int(pick(function()))
    return None


DEFAULT_DISK_MOUNTS = (("config", "/config"), ("media", "/media"))
"""Sublarr's container volumes, reported as ``mount="config"``/``"media"`` like its own module."""


def disk_mounts(candidates=None) -> tuple[str, ...]:
    """``label=path`` for each candidate directory that exists (default: Sublarr's volumes)."""
    candidates = DEFAULT_DISK_MOUNTS if candidates is None else candidates
    return tuple(f"{label}={path}" for label, path in candidates if os.path.isdir(path))


def version_of(app, explicit: str | None = None) -> str:
    """The host's version: given, ``SUBLARR_VERSION``/``VERSION`` in the config,
    the ``version.py`` beside the app (Sublarr's ``backend/version.py``), its
    package's ``__version__``; else ``unknown``."""
    if explicit:
        return explicit
    for key in ("SUBLARR_VERSION", "VERSION"):
        if app.config.get(key):
            return str(app.config[key])
    found = _version_beside(app)
    if found:
        return found
    package = sys.modules.get(app.import_name.partition(".")[0])
    found = getattr(package, "__version__", None)
    return str(found) if found else "unknown"


def _version_beside(app) -> str | None:
    path = os.path.realpath(os.path.join(app.root_path, "version.py"))
    if not os.path.isfile(path):
        return None
    for module in list(sys.modules.values()):
        if os.path.realpath(getattr(module, "__file__", None) or "") == path:
            version = getattr(module, "__version__", None)
            return str(version) if version else None
    try:  # not imported yet: load it under a private name (it only reads a file)
        spec = importlib.util.spec_from_file_location("_sublarr_telemetry_host_version", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - a broken version.py must not stop the app
        _log.warning("sublarr telemetry: could not read the version from %s: %s", path, exc)
        return None
    version = getattr(module, "__version__", None)
    return str(version) if version else None
