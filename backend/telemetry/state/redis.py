"""Redis reachability and memory, read through a client with short time bounds."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RedisReading:
    connected: bool
    used_memory: int | None


def probe_client(url: str, timeout_seconds: float = 0.5):
    """A client that gives up quickly and never retries: a probe, not a worker."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds,
        retry=Retry(NoBackoff(), 0), retry_on_timeout=False, health_check_interval=0,
        single_connection_client=False, client_name="sublarr-telemetry")


def read_redis(client: Any) -> RedisReading:
    info = client.info("memory")
    return RedisReading(connected=True, used_memory=int(info.get("used_memory", 0)))
