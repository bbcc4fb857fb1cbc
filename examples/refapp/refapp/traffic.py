"""Generates a realistic request mix against a running app over real HTTP.

Standard library only (``http.client``, one keep-alive connection per thread)
so it can run anywhere the app runs, including a bare container. Every route
is exercised: mostly reads, some job submissions, searches and downloads, and
a few 404s, 500s, health checks and static files, so every metric family gets
data. Network errors are counted, never raised.

With a ``seed`` each thread draws the same sequence of request kinds and
parameters every run; ids of created jobs come from the server's answers.
"""
from __future__ import annotations

import argparse
import http.client
import json
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

from refapp.config import DEFAULT_PROVIDERS
from refapp.models import SUBTITLE_FORMATS

TITLES = ("The Expanse", "Frieren", "Severance", "Dark", "Spy x Family", "Andor", "Mushishi")
LANGUAGES = ("en", "de", "fr", "es", "ja")

# Request kinds and their weights (relative frequency).
MIX: tuple[tuple[str, int], ...] = (
    ("series", 20),
    ("list_jobs", 14),
    ("get_job", 10),
    ("list_wanted", 10),
    ("submit_job", 8),
    ("search", 8),
    ("download", 6),
    ("status", 4),
    ("health", 4),
    ("static", 3),
    ("not_found", 3),
    ("add_wanted", 2),
    ("error", 2),
)

_STALE_CONNECTION = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


@dataclass
class TrafficStats:
    """Requests sent (``total``), answers by HTTP status, and network errors."""

    total: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    error_types: dict[str, int] = field(default_factory=dict)

    def copy(self) -> "TrafficStats":
        return TrafficStats(self.total, dict(self.by_status), self.errors, dict(self.error_types))


@dataclass(frozen=True)
class PlannedRequest:
    kind: str
    method: str
    path: str
    body: dict[str, Any] | None = None


class Planner:
    """Draws the next request from the mix; one per thread, driven by its own rng."""

    def __init__(self, rng: random.Random, providers: list[str], wanted_ids: list[int]):
        self.rng = rng
        self.providers = providers or list(DEFAULT_PROVIDERS)
        self.wanted_ids = list(wanted_ids)
        self.job_ids: list[int] = []
        self._kinds = [k for k, _ in MIX]
        self._weights = [w for _, w in MIX]

    def _pick(self, ids: list[int], fallback_max: int) -> int:
        draw = self.rng.randrange(1 << 30)  # drawn even when unused: keeps the sequence fixed
        return ids[draw % len(ids)] if ids else 1 + draw % fallback_max

    def next(self) -> PlannedRequest:
        rng = self.rng
        kind = rng.choices(self._kinds, self._weights)[0]
        if kind == "series":
            return PlannedRequest(kind, "GET", f"/api/v1/series/{rng.randint(1, 40)}")
        if kind == "list_jobs":
            return PlannedRequest(kind, "GET", "/api/v1/jobs?limit=20")
        if kind == "get_job":
            unknown = rng.random() < 0.1
            job_id = self._pick(self.job_ids, 50)
            return PlannedRequest(kind, "GET", f"/api/v1/jobs/{job_id + 10**6 if unknown else job_id}")
        if kind == "list_wanted":
            return PlannedRequest(kind, "GET", "/api/v1/wanted")
        if kind == "submit_job":
            title, episode = rng.choice(TITLES), rng.randint(1, 24)
            source = rng.choice(("en", "en", "en", "ja"))
            target = rng.choice(("de", "fr", "es", "en"))  # en->en is skipped
            body = {
                "file_path": f"/media/{title}/S01E{episode:02d}.mkv",
                "source_lang": source,
                "target_lang": target,
                "fmt": rng.choice(SUBTITLE_FORMATS),
            }
            return PlannedRequest(kind, "POST", "/api/v1/jobs", body)
        if kind == "search":
            return PlannedRequest(kind, "POST", f"/api/v1/wanted/{self._pick(self.wanted_ids, 5)}/search")
        if kind == "download":
            provider = rng.choice(self.providers)
            body = {"id": f"{provider}-{rng.randrange(10000)}", "fmt": rng.choice(SUBTITLE_FORMATS)}
            return PlannedRequest(kind, "POST", f"/api/v1/providers/{provider}/download", body)
        if kind == "status":
            return PlannedRequest(kind, "GET", "/api/v1/status")
        if kind == "health":
            return PlannedRequest(kind, "GET", "/api/v1/health")
        if kind == "static":
            return PlannedRequest(kind, "GET", "/static/app.css")
        if kind == "not_found":
            word = rng.choice(("missing", "old-api", "nope", "episodes"))
            return PlannedRequest(kind, "GET", f"/api/v1/{word}-{rng.randrange(10000)}")
        if kind == "add_wanted":
            body = {"title": f"{rng.choice(TITLES)} S01E{rng.randint(1, 24):02d}",
                    "language": rng.choice(LANGUAGES)}
            return PlannedRequest(kind, "POST", "/api/v1/wanted", body)
        return PlannedRequest(kind, "GET", "/api/v1/debug/error")

    def learn(self, request: PlannedRequest, status: int, payload: Any) -> None:
        """Remember ids the server created, as targets for later requests."""
        if not isinstance(payload, dict) or not isinstance(payload.get("id"), int):
            return
        if request.kind == "submit_job" and status == 202:
            self.job_ids = (self.job_ids + [payload["id"]])[-200:]
        elif request.kind == "add_wanted" and status == 201:
            self.wanted_ids = (self.wanted_ids + [payload["id"]])[-200:]


class _Client:
    """One keep-alive HTTP connection; reconnects when the server closed it."""

    def __init__(self, scheme: str, host: str, port: int | None, prefix: str, timeout: float):
        cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        self._conn = cls(host, port, timeout=timeout)
        self._prefix = prefix
        self._reused = False

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json", "User-Agent": "refapp-traffic"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        reused = self._reused
        try:
            return self._send(method, path, data, headers)
        except _STALE_CONNECTION:
            if not reused:
                raise
            # The server dropped the idle keep-alive connection before reading
            # this request; send it once more on a fresh connection.
            self.close()
            return self._send(method, path, data, headers)

    def _send(self, method, path, data, headers) -> tuple[int, Any]:
        try:
            self._conn.request(method, self._prefix + path, body=data, headers=headers)
            response = self._conn.getresponse()
            raw = response.read()
        except Exception:
            self.close()
            raise
        self._reused = not response.will_close
        payload = None
        if raw and (response.getheader("Content-Type") or "").startswith("application/json"):
            try:
                payload = json.loads(raw)
            except ValueError:
                pass
        return response.status, payload

    def close(self) -> None:
        self._conn.close()
        self._reused = False


class TrafficGenerator:
    """Sends the request mix at ``rate`` requests/s (in total) from ``threads`` threads.

    ``rate`` of 0 or None sends as fast as the server answers. ``stats`` is a
    running total over all runs of this generator, safe to read while it runs.
    """

    def __init__(
        self,
        base_url: str,
        rate: float | None = 20.0,
        seed: int | None = None,
        threads: int = 1,
        timeout: float = 10.0,
    ):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        if threads < 1:
            raise ValueError("threads must be >= 1")
        self.base_url = base_url
        self.rate = rate if rate and rate > 0 else None
        self.seed = seed
        self.threads = threads
        self._target = (parts.scheme, parts.hostname, parts.port, parts.path.rstrip("/"), timeout)
        self._lock = threading.Lock()
        self._stats = TrafficStats()
        self._providers: list[str] = []
        self._wanted_ids: list[int] = []
        self._seeded = False

    @property
    def stats(self) -> TrafficStats:
        with self._lock:
            return self._stats.copy()

    def _client(self) -> _Client:
        return _Client(*self._target)

    def seed_data(self, items: int = 5) -> int:
        """Create wanted items to search for and learn the provider names.

        Not counted in ``stats``; failures are tolerated (searches then hit
        404s until items exist). Returns the number of items created.
        """
        client = self._client()
        try:
            try:
                status, payload = client.request("GET", "/api/v1/status")
                if status == 200 and isinstance(payload, dict):
                    self._providers = sorted(payload.get("providers") or {})
            except (OSError, http.client.HTTPException):
                return 0
            for i in range(items):
                body = {"title": f"{TITLES[i % len(TITLES)]} S01E{i + 1:02d}", "language": "en"}
                try:
                    status, payload = client.request("POST", "/api/v1/wanted", body)
                except (OSError, http.client.HTTPException):
                    break
                if status == 201 and isinstance(payload, dict):
                    self._wanted_ids.append(payload["id"])
        finally:
            client.close()
        self._seeded = True
        return len(self._wanted_ids)

    def run(
        self,
        duration: float | None = None,
        requests: int | None = None,
        stop_event: threading.Event | None = None,
        on_progress: Callable[[TrafficStats], None] | None = None,
    ) -> TrafficStats:
        """Send traffic until ``duration`` seconds pass, ``requests`` have been
        sent, or ``stop_event`` is set (whichever comes first; with none of
        them, until stopped). Returns the running totals."""
        if not self._seeded:
            self.seed_data()
        stop = stop_event or threading.Event()
        deadline = None if duration is None else time.monotonic() + duration
        budgets = [None] * self.threads
        if requests is not None:
            budgets = [requests // self.threads + (i < requests % self.threads) for i in range(self.threads)]
        progress = _Progress(on_progress)

        workers = [
            threading.Thread(
                target=self._loop, args=(i, budgets[i], deadline, stop, progress),
                name=f"refapp-traffic-{i}", daemon=True,
            )
            for i in range(self.threads)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        progress.final(self.stats)
        return self.stats

    def _loop(self, index: int, budget: int | None, deadline: float | None, stop, progress) -> None:
        seed = None if self.seed is None else f"{self.seed}:{index}"
        planner = Planner(random.Random(seed), self._providers, self._wanted_ids)
        interval = None if self.rate is None else self.threads / self.rate
        client = self._client()
        next_at = time.monotonic() + (0 if interval is None else index * interval / self.threads)
        sent = 0
        try:
            while not stop.is_set() and (budget is None or sent < budget):
                if interval is not None:
                    delay = next_at - time.monotonic()
                    if delay > 0 and stop.wait(delay):
                        break
                    # Fall behind by more than a second? Restart the schedule
                    # rather than bursting to catch up.
                    next_at = max(next_at + interval, time.monotonic() - 1.0)
                if deadline is not None and time.monotonic() >= deadline:
                    break
                request = planner.next()
                sent += 1
                self._send(client, planner, request)
                progress.maybe(self.stats)
        finally:
            client.close()

    def _send(self, client: _Client, planner: Planner, request: PlannedRequest) -> None:
        try:
            status, payload = client.request(request.method, request.path, request.body)
        except (OSError, http.client.HTTPException) as exc:
            with self._lock:
                self._stats.total += 1
                self._stats.errors += 1
                name = type(exc).__name__
                self._stats.error_types[name] = self._stats.error_types.get(name, 0) + 1
            return
        with self._lock:
            self._stats.total += 1
            self._stats.by_status[status] = self._stats.by_status.get(status, 0) + 1
        planner.learn(request, status, payload)


class _Progress:
    """Calls ``on_progress`` at most once a second, and once at the end."""

    def __init__(self, callback):
        self._callback = callback
        self._lock = threading.Lock()
        self._last = time.monotonic()

    def maybe(self, stats: TrafficStats) -> None:
        if self._callback is None:
            return
        with self._lock:
            now = time.monotonic()
            if now - self._last < 1.0:
                return
            self._last = now
        self._callback(stats)

    def final(self, stats: TrafficStats) -> None:
        if self._callback is not None:
            self._callback(stats)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m refapp.traffic", description=__doc__.split("\n")[0])
    parser.add_argument("base_url", nargs="?", default="http://127.0.0.1:5000")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second (0: unlimited)")
    parser.add_argument("--duration", type=float, help="seconds to run (default: until Ctrl-C)")
    parser.add_argument("--requests", type=int, help="stop after this many requests")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)

    generator = TrafficGenerator(args.base_url, args.rate, args.seed, args.threads)

    def show(stats: TrafficStats) -> None:
        codes = " ".join(f"{k}:{v}" for k, v in sorted(stats.by_status.items()))
        print(f"requests {stats.total}  {codes}  errors {stats.errors}", file=sys.stderr, flush=True)

    stop = threading.Event()
    try:
        generator.run(args.duration, args.requests, stop, show)
    except KeyboardInterrupt:
        stop.set()
    print(json.dumps(vars(generator.stats), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
