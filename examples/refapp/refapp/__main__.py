"""``python -m refapp``: serve the app with werkzeug's threaded server.

For development and the demo; use ``gunicorn refapp.wsgi:app`` in containers.
Listens on SUBLARR_HOST:SUBLARR_PORT (default 127.0.0.1:5000).
"""
from __future__ import annotations

import logging

from werkzeug.serving import run_simple

from refapp.app import create_app
from refapp.config import Config


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = Config.from_env()
    app = create_app(config)
    try:
        run_simple(config.host, config.port, app, threaded=True, use_reloader=False)
    finally:
        app.job_queue.shutdown(wait=False)


if __name__ == "__main__":
    main()
