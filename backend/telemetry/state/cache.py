"""Cache state from the backend's own statistics (Sublarr's get_stats())."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..labels import as_text


@dataclass(frozen=True)
class CacheReading:
    backend: str
    hits: int
    misses: int
    size: int | None


def read_cache(cache: Any) -> CacheReading:
    stats = cache.get_stats()
    backend = as_text(stats.get("backend") or "memory").lower()
    size = stats.get("size")
    return CacheReading(backend=backend, hits=int(stats.get("hits") or 0),
                        misses=int(stats.get("misses") or 0),
                        size=None if size is None else int(size))
