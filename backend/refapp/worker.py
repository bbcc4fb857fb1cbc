"""``python -m refapp.worker [--simple] [--burst]``: an RQ worker for the app's queue.

Needs SUBLARR_REDIS_URL; jobs reach the database through SUBLARR_DATABASE_URL,
which must name the same database as the web app's. With sublarr-telemetry
installed the worker is telemetry's (forking, or in-process with
``--simple``), so job metrics are pushed exactly once over OTLP.
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

    connection = redis.Redis.from_url(config.redis_url)
    worker_class, extra = _worker_class(args.simple, config)
    worker = worker_class([Queue(config.rq_queue_name, connection=connection)], connection=connection, **extra)
    worker.work(burst=args.burst)
    return 0


def _worker_class(simple: bool, config: Config):
    """Telemetry's worker classes when the package is there, rq's otherwise."""
    try:
        from telemetry.rq_worker import SimpleWorker, Worker, WorkerTelemetry
    except ImportError as exc:
        logging.getLogger(__name__).warning("telemetry not available (%s); worker runs without metrics", exc)
        from rq import SimpleWorker, Worker
        return (SimpleWorker if simple else Worker), {}
    from refapp import __version__, jobs

    telemetry = WorkerTelemetry(providers=config.providers, version=__version__,
                                job_functions=jobs.JOB_FUNCTIONS)
    return (SimpleWorker if simple else Worker), {"telemetry": telemetry}


if __name__ == "__main__":
    sys.exit(main())
