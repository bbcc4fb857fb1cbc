"""``python -m refapp.worker``: an RQ worker for the app's queue.

Needs SUBLARR_REDIS_URL; jobs reach the database through SUBLARR_DATABASE_URL,
which must name the same database as the web app's.
"""
from __future__ import annotations

import logging
import sys

from refapp.config import Config


def main() -> int:
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
    from rq import Queue, Worker

    connection = redis.Redis.from_url(config.redis_url)
    worker = Worker([Queue(config.rq_queue_name, connection=connection)], connection=connection)
    worker.work()
    return 0


if __name__ == "__main__":
    sys.exit(main())
