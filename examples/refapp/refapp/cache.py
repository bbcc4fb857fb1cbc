"""Sublarr's cache interface with an in-process and a Redis implementation.

Both count hits and misses on ``get`` only, and keep those counts when the
cache is cleared: they are running totals (telemetry exports them as counters),
while ``size`` is the current number of entries.
"""
from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from typing import Any, Callable

from refapp.config import Config


class MemoryCache:
    """A thread-safe dict with per-entry TTL and optional LRU size bound.

    One lock guards the entries and the counters together, so ``hits`` and
    ``misses`` are exact however many threads call ``get`` at once.
    """

    backend = "memory"

    def __init__(self, max_entries: int | None = None, clock: Callable[[], float] = time.monotonic):
        if max_entries is not None and max_entries < 1:
            raise ValueError("max_entries must be >= 1 or None")
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[Any, float | None]] = OrderedDict()
        self._hits = 0
        self._misses = 0

    def _live(self, key: str) -> tuple[Any, float | None] | None:
        """The entry for ``key`` unless it expired (expired ones are dropped). Lock held."""
        entry = self._entries.get(key)
        if entry is not None and entry[1] is not None and entry[1] <= self._clock():
            del self._entries[key]
            return None
        return entry

    def get(self, key: str) -> Any | None:
        with self._lock:
            entry = self._live(key)
            if entry is None:
                self._misses += 1
                return None
            self._hits += 1
            self._entries.move_to_end(key)
            return entry[0]

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        expires = None if ttl is None else self._clock() + ttl
        with self._lock:
            self._entries[key] = (value, expires)
            self._entries.move_to_end(key)
            if self._max_entries is not None:
                while len(self._entries) > self._max_entries:
                    self._entries.popitem(last=False)

    def delete(self, key: str) -> bool:
        with self._lock:
            return self._entries.pop(key, None) is not None

    def exists(self, key: str) -> bool:
        with self._lock:
            return self._live(key) is not None

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def get_stats(self) -> dict[str, Any]:
        with self._lock:
            now = self._clock()
            expired = [k for k, (_, exp) in self._entries.items() if exp is not None and exp <= now]
            for key in expired:
                del self._entries[key]
            return {
                "backend": self.backend,
                "hits": self._hits,
                "misses": self._misses,
                "size": len(self._entries),
            }


class RedisCache:
    """Cache in Redis, shared by every web process and worker.

    Values are JSON under ``<prefix>data:<key>``; hit and miss totals are Redis
    counters under ``<prefix>stats:`` so that all processes add to one true
    count. The separate ``data:`` namespace means no user key can collide with
    the counters.

    ``size`` is counted with SCAN over ``<prefix>data:*`` rather than a side
    index of keys: Redis expires entries on its own (TTL, eviction), which a
    side set would not notice and would over-count. SCAN is incremental and
    never blocks the server; it costs time proportional to the keyspace, which
    is acceptable for a stats read done every few seconds at most.
    """

    backend = "redis"

    def __init__(self, client, prefix: str = "sublarr:cache:"):
        self._client = client
        self._prefix = prefix
        self._data = prefix + "data:"
        self._hits_key = prefix + "stats:hits"
        self._misses_key = prefix + "stats:misses"

    def get(self, key: str) -> Any | None:
        raw = self._client.get(self._data + key)
        self._client.incr(self._misses_key if raw is None else self._hits_key)
        return None if raw is None else json.loads(raw)

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        payload = json.dumps(value)
        if ttl is None:
            self._client.set(self._data + key, payload)
        else:
            self._client.set(self._data + key, payload, px=max(1, int(ttl * 1000)))

    def delete(self, key: str) -> bool:
        return bool(self._client.delete(self._data + key))

    def exists(self, key: str) -> bool:
        return bool(self._client.exists(self._data + key))

    def _data_keys(self):
        return self._client.scan_iter(match=_glob_escape(self._data) + "*", count=1000)

    def clear(self) -> None:
        batch = []
        for key in self._data_keys():
            batch.append(key)
            if len(batch) >= 500:
                self._client.unlink(*batch)
                batch.clear()
        if batch:
            self._client.unlink(*batch)

    def get_stats(self) -> dict[str, Any]:
        hits, misses = self._client.mget(self._hits_key, self._misses_key)
        return {
            "backend": self.backend,
            "hits": int(hits or 0),
            "misses": int(misses or 0),
            "size": sum(1 for _ in self._data_keys()),
        }


def _glob_escape(text: str) -> str:
    """Escape Redis MATCH pattern characters so the prefix matches literally."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def make_cache(config: Config, redis_client=None) -> MemoryCache | RedisCache:
    """Redis cache when a Redis URL is configured, else an in-process one."""
    if config.redis_url:
        if redis_client is None:
            import redis

            redis_client = redis.Redis.from_url(config.redis_url)
        return RedisCache(redis_client)
    return MemoryCache(max_entries=10_000)
