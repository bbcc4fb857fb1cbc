"""Rendering a scrape, and the answer when metrics are off.

The ``Accept`` header is negotiated as prometheus_client does it. When the
pipeline owns the registry and the cached encoder writes the negotiated
format (:mod:`telemetry.fast_exposition`), it renders the scrape; otherwise
(``dots``/``values`` escaping, or a registry the app shares with collectors
of its own) prometheus_client's encoder renders the whole registry.

Scrapes are serialised: the OpenTelemetry Prometheus reader hands collected
data to its registry collector through a queue, so two concurrent scrapes
could each take the other's batch and one would come back empty.
"""
from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from .fast_exposition import CachedExposition, negotiate

TEXT_PLAIN = "text/plain; charset=utf-8"
GZIP_MIN_BYTES = 1024


@dataclass(frozen=True)
class Exposition:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...]


class ScrapeRenderer:
    """Turns a ``CollectorRegistry`` into a response body, one scrape at a time.

    ``cached``: the cached encoder of the pipeline's own families, used when
    ``registry`` holds nothing else.
    """

    def __init__(self, registry: CollectorRegistry, cached: CachedExposition | None = None):
        self.registry = registry
        self.cached = cached
        self._lock = threading.Lock()

    def render(self, accept: str | None = None, accept_encoding: str | None = None) -> Exposition:
        negotiated = negotiate(accept)
        with self._lock:
            if self.cached is not None and negotiated.fast_format is not None:
                body = self.cached.render(negotiated)
            else:
                body = negotiated.encoder(self.registry)
        headers = [("Content-Type", negotiated.content_type), ("Cache-Control", "no-store")]
        if accept_encoding and "gzip" in accept_encoding and len(body) >= GZIP_MIN_BYTES:
            body = gzip.compress(body, compresslevel=5)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Vary", "Accept, Accept-Encoding"))
        return Exposition(200, body, tuple(headers))


def unavailable(reason: str) -> Exposition:
    """503 with a plain-text reason: a scrape of a disabled module says why."""
    body = f"# sublarr telemetry is not serving metrics: {reason}\n".encode()
    return Exposition(503, body, (("Content-Type", TEXT_PLAIN), ("Cache-Control", "no-store")))


def unauthorized(challenge: tuple[str, str]) -> Exposition:
    return Exposition(401, b"unauthorized\n",
                      (("Content-Type", TEXT_PLAIN), ("Cache-Control", "no-store"), challenge))
