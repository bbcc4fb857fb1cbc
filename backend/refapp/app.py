"""The app factory: builds each component and hangs it on the Flask app.

Components are plain attributes (``app.db_engine``, ``app.cache_backend``, ...)
as in Sublarr, which is also how the telemetry layer finds them.
"""
from __future__ import annotations

import logging

from flask import Flask, current_app
from sqlalchemy.orm import scoped_session, sessionmaker

from refapp import __version__ as refapp_version
from refapp.cache import make_cache
from refapp.config import Config
from refapp.jobqueue import make_queue
from refapp.models import init_db, make_engine
from refapp.providers import ProviderManager
from refapp.routes import api

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
    app.provider_manager = ProviderManager(config)

    app.register_blueprint(api)
    if telemetry:
        _adopt_telemetry(app)
    return app


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
    init_telemetry(app, providers=config.providers, redis_url=config.redis_url,
                   disk_paths=(config.data_dir,), version=refapp_version)
