"""The app factory: builds each component and hangs it on the Flask app.

Shaped like Sublarr's ``create_app``: components are plain attributes
(``app.db_engine``, ``app.cache_backend``, ``app.job_queue``) or extensions
(``app.extensions["provider_manager"]``); everything under ``/api/`` needs
the API key (``SUBLARR_API_KEY``, as the ``X-Api-Key`` header or ``?apikey=``;
empty means no auth); ``/api/v1/metrics`` serves ``metrics.generate_metrics()``
behind it; every other path is the single-page app's catch-all. Telemetry is
adopted with the documented line only, last.
"""
from __future__ import annotations

import logging

import hmac

from flask import Flask, Response, current_app, jsonify, request
from sqlalchemy.orm import scoped_session, sessionmaker
from werkzeug.routing import PathConverter

from refapp import metrics
from refapp.cache import make_cache
from refapp.config import Config
from refapp.jobqueue import make_queue
from refapp.models import init_db, make_engine
from refapp.providers import ProviderManager
from refapp.routes import api
import refapp.db.jobs  # noqa: F401  (Sublarr's db.jobs / db.wanted helpers, found by telemetry)
import refapp.db.wanted  # noqa: F401

SPA_INDEX = ("<!doctype html><html><head><title>Sublarr reference app</title></head>"
             "<body><div id=\"app\">reference app</div></body></html>")

log = logging.getLogger(__name__)


def create_app(config: Config | None = None, *, telemetry: bool = True) -> Flask:
    """Build the app from ``config`` (default: the environment).

    With ``telemetry`` the telemetry package is attached last, once every
    component it may want to observe exists.
    """
    config = config or Config.from_env()
    app = Flask(__name__)  # static files from refapp/static/
    app.refapp_config = config

    app.db_engine = make_engine(config.database_url)
    init_db(app.db_engine)
    app.session_factory = scoped_session(sessionmaker(bind=app.db_engine, expire_on_commit=False))
    app.teardown_appcontext(_remove_session)

    app.redis_client = None
    if config.redis_url:
        import redis

        app.redis_client = redis.Redis.from_url(config.redis_url)
    app.cache_backend = make_cache(config, app.redis_client)
    app.job_queue = make_queue(config, app, app.redis_client)
    app.extensions["provider_manager"] = ProviderManager(config)

    app.before_request(_require_api_key)
    app.register_blueprint(api)
    app.add_url_rule("/api/v1/metrics", "metrics", _metrics)
    app.url_map.converters["spa"] = SpaPath
    app.add_url_rule("/", "spa", _spa, defaults={"path": ""})
    app.add_url_rule("/<spa:path>", "spa", _spa)
    if telemetry:
        _adopt_telemetry(app)
    return app


def _require_api_key():
    """Everything under /api/ needs the key when one is set (health excepted)."""
    key = current_app.refapp_config.api_key
    if not key or not request.path.startswith("/api/") or request.path == "/api/v1/health":
        return None
    given = request.headers.get("X-Api-Key") or request.args.get("apikey") or ""
    if hmac.compare_digest(given.encode(), key.encode()):
        return None
    return jsonify(error="invalid or missing API key"), 401


def _metrics():
    body, content_type = metrics.generate_metrics(current_app.refapp_config.data_dir)
    return Response(body, content_type=content_type)


class SpaPath(PathConverter):
    """Any path outside /api/: an unknown API path stays a 404 without a route."""

    regex = r"(?!api(?:/|$))[^/].*?"


def _spa(path: str):
    """The single-page app's catch-all: every path that is not an API route gets the index."""
    return Response(SPA_INDEX, content_type="text/html; charset=utf-8")


def _remove_session(_exc: BaseException | None) -> None:
    # Runs when a request's or a memory-queue job's app context ends.
    current_app.session_factory.remove()


def _adopt_telemetry(app: Flask) -> None:
    """Attach sublarr-telemetry if it is importable; run without it otherwise."""
    try:
        from telemetry import init_telemetry
    except ImportError as exc:
        log.warning("telemetry not available (%s); running without metrics", exc)
        return
    config = app.refapp_config
    # Sublarr needs no arguments (its Redis URL is SUBLARR_REDIS_URL, its volumes
    # /config and /media); this app's Config may come from elsewhere than the environment.
    init_telemetry(app, redis_url=config.redis_url, disk_paths=(config.data_dir,))
