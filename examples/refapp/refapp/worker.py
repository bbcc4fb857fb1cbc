"""``python -m refapp.worker [--simple] [--burst]``: an RQ worker for the app's queue.

Shaped like Sublarr's ``worker.py``: it calls ``create_app()`` (so the app's
telemetry, if adopted, is this process's one pipeline) and runs an rq worker
with a mixin that pushes the app context around each job. Needs
SUBLARR_REDIS_URL and the web app's SUBLARR_DATABASE_URL. With
sublarr-telemetry installed the worker class is telemetry's (forking, or
in-process with ``--simple``): job metrics are counted exactly once, pushed
over OTLP or served on SUBLARR_METRICS_LISTEN.
"""
from __future__ import annotations

import logging
import sys

from refapp.config import Config


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m refapp.worker")
    parser.add_argument("--simple", action="store_true", help="run jobs in the worker process (no fork)")
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = Config.from_env()
    except ValueError as exc:
        print(f"refapp.worker: {exc}", file=sys.stderr)
        return 2
    if not config.redis_url:
        print(
            "refapp.worker: SUBLARR_REDIS_URL is required (e.g. redis://localhost:6379/0); "
            "without it the web app runs jobs in-process and needs no worker",
            file=sys.stderr,
        )
        return 2

    import redis
    from rq import Queue

    from refapp.app import create_app

    app = create_app(config)  # as Sublarr's worker.py: telemetry, if adopted, comes with the app
    connection = redis.Redis.from_url(config.redis_url)
    worker_class = _worker_class(args.simple)
    worker = worker_class([Queue(config.rq_queue_name, connection=connection)], connection=connection, app=app)
    worker.work(burst=args.burst)
    return 0


class AppContextMixin:
    """Runs each job inside the app context (Sublarr's worker does the same)."""

    def __init__(self, *args, app, **kwargs):
        self.app = app
        super().__init__(*args, **kwargs)

    def perform_job(self, job, queue):
        if self.is_horse:
            # A forked work-horse must not share the parent's pooled connections.
            self.app.db_engine.dispose(close=False)
        with self.app.app_context():
            return super().perform_job(job, queue)


def _worker_class(simple: bool):
    """Telemetry's worker classes when the package is there, rq's otherwise."""
    try:
        from telemetry.rq_worker import SimpleWorker, Worker
    except ImportError as exc:
        logging.getLogger(__name__).warning("telemetry not available (%s); worker runs without metrics", exc)
        from rq import SimpleWorker, Worker
    base = SimpleWorker if simple else Worker
    return type(f"App{base.__name__}", (AppContextMixin, base), {})


if __name__ == "__main__":
    sys.exit(main())
