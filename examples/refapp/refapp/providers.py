"""Simulated subtitle providers, each behind its own circuit breaker.

The providers sleep and fail at random (scaled by config) so that searches and
downloads have realistic latencies and error rates; the breakers stop calling a
provider that keeps failing, as Sublarr does, and let one probe through after a
cool-down. Outcomes are reported through ``telemetry.events``.
"""
from __future__ import annotations

import enum
import random
import threading
import time
import zlib
from typing import Any, Callable

from telemetry import events

from refapp.config import Config
from refapp.models import SUBTITLE_FORMATS

class CircuitState(str, enum.Enum):
    """As Sublarr's: ``state.value`` is the name; equal to the plain string too."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    def __str__(self) -> str:
        return self.value


CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


class ProviderError(Exception):
    """A provider call failed (simulated network or API error)."""


class UnknownProviderError(LookupError):
    """No provider with that name is configured."""


class CircuitOpenError(Exception):
    """The provider's breaker is open, so the call was not attempted."""

    def __init__(self, name: str, retry_after: float):
        super().__init__(f"circuit for {name!r} is open; retry in {retry_after:.1f}s")
        self.name = name
        self.retry_after = retry_after


class CircuitBreaker:
    """Closed -> open after ``failure_threshold`` consecutive failures;
    open -> half_open once ``recovery_timeout`` has passed; half_open lets one
    probe call through, whose success closes and whose failure re-opens.

    ``state`` is computed from the stored state and the clock and changes
    nothing, so telemetry or a status page may read it at any time without
    consuming the probe or altering the breaker. Only ``allow`` (and so
    ``call``) and the ``record_*`` methods change state.
    """

    def __init__(
        self,
        name: str,
        failure_threshold: int = 3,
        recovery_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.name = name
        self.failure_threshold = failure_threshold
        self.recovery_timeout = recovery_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False

    def _effective_state(self) -> str:
        if self._state == OPEN and self._clock() - self._opened_at >= self.recovery_timeout:
            return HALF_OPEN
        return self._state

    @property
    def state(self) -> CircuitState:
        """closed, open or half_open (``.value`` is the string); reading it has no side effects."""
        with self._lock:
            return self._effective_state()

    @property
    def failure_count(self) -> int:
        """Consecutive failures counted towards opening."""
        with self._lock:
            return self._failures

    def retry_after(self) -> float:
        """Seconds until an open breaker lets a probe through (0 if not open)."""
        with self._lock:
            if self._effective_state() != OPEN:
                return 0.0
            return max(0.0, self.recovery_timeout - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """May a call go ahead now? In half_open, admits a single probe.

        A caller that gets True must report the outcome with ``record_success``
        or ``record_failure`` (``call`` does this for you).
        """
        with self._lock:
            state = self._effective_state()
            if state == CLOSED:
                return True
            if state == HALF_OPEN and not self._probe_in_flight:
                self._state = HALF_OPEN
                self._probe_in_flight = True
                return True
            return False

    def record_success(self) -> None:
        with self._lock:
            self._state = CLOSED
            self._failures = 0
            self._probe_in_flight = False

    def record_failure(self) -> None:
        with self._lock:
            self._probe_in_flight = False
            if self._state == OPEN:
                return  # a late result of a call admitted before the breaker opened
            self._failures += 1
            if self._state == HALF_OPEN or self._failures >= self.failure_threshold:
                self._state = OPEN
                self._opened_at = self._clock()

    def call(self, fn: Callable[..., Any], *args, **kwargs) -> Any:
        """Run ``fn`` through the breaker; raises CircuitOpenError when open."""
        if not self.allow():
            raise CircuitOpenError(self.name, self.retry_after())
        try:
            result = fn(*args, **kwargs)
        except BaseException:
            self.record_failure()
            raise
        self.record_success()
        return result


class Provider:
    """A fake subtitle provider with random latency and failures."""

    def __init__(
        self,
        name: str,
        latency_scale: float = 1.0,
        failure_rate: float = 0.1,
        rng: random.Random | None = None,
    ):
        self.name = name
        self.latency_scale = latency_scale
        self.failure_rate = failure_rate
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()  # Random is not safe to share mid-sequence

    def _roll(self) -> tuple[float, bool, float]:
        with self._rng_lock:
            return self._rng.uniform(0.02, 0.2), self._rng.random() < self.failure_rate, self._rng.random()

    def _simulate(self, what: str) -> float:
        delay, fails, draw = self._roll()
        if self.latency_scale > 0:
            time.sleep(delay * self.latency_scale)
        if fails:
            raise ProviderError(f"{self.name}: simulated {what} failure")
        return draw

    def search(self, query: str, language: str = "en") -> list[dict[str, Any]]:
        draw = self._simulate("search")
        count = int(draw * 4)  # 0..3 results
        return [
            {
                "provider": self.name,
                "id": f"{self.name}-{zlib.crc32(f'{query}|{language}'.encode()) % 100000}-{i}",
                "title": query,
                "language": language,
                "fmt": SUBTITLE_FORMATS[(i + len(query)) % len(SUBTITLE_FORMATS)],
                "score": round(draw * 100 - i * 5, 1),
            }
            for i in range(count)
        ]

    def download(self, result: dict[str, Any]) -> dict[str, Any]:
        draw = self._simulate("download")
        fmt = result.get("fmt") or SUBTITLE_FORMATS[int(draw * len(SUBTITLE_FORMATS))]
        return {
            "provider": self.name,
            "id": result.get("id"),
            "fmt": fmt,
            "size": 2000 + int(draw * 60000),
        }


class ProviderManager:
    """All configured providers and their breakers, keyed by provider name.

    Shaped like Sublarr's: the app keeps it in ``app.extensions["provider_manager"]``
    and the breakers sit in the private ``_circuit_breakers`` dict (no public accessor).
    """

    def __init__(self, config: Config, *, failure_threshold: int = 3, recovery_timeout: float = 30.0):
        self.providers: dict[str, Provider] = {}
        self._circuit_breakers: dict[str, CircuitBreaker] = {}
        for name in config.providers:
            seed = None if config.seed is None else f"{config.seed}:{name}"
            self.providers[name] = Provider(
                name, config.latency_scale, config.failure_rate, random.Random(seed)
            )
            self._circuit_breakers[name] = CircuitBreaker(name, failure_threshold, recovery_timeout)

    def search(self, query: str, language: str = "en") -> list[dict[str, Any]]:
        """Search every provider in turn; failing ones are skipped and reported."""
        results: list[dict[str, Any]] = []
        for name, provider in self.providers.items():
            try:
                found = self._circuit_breakers[name].call(provider.search, query, language)
            except CircuitOpenError:
                events.provider_searched(provider=name, status="circuit_open")
            except Exception:
                events.provider_searched(provider=name, status="failed")
            else:
                events.provider_searched(provider=name, status="success")
                results.extend(found)
        results.sort(key=lambda r: r["score"], reverse=True)
        return results

    def download(self, provider_name: str, result: dict[str, Any]) -> dict[str, Any]:
        """Download one result.

        Raises UnknownProviderError, ValueError (bad ``fmt``; checked before the
        breaker so a bad request never counts against the provider),
        CircuitOpenError or ProviderError.
        """
        provider = self.providers.get(provider_name)
        if provider is None:
            raise UnknownProviderError(provider_name)
        if result.get("fmt") not in (None, *SUBTITLE_FORMATS):
            raise ValueError(f"fmt must be one of {', '.join(SUBTITLE_FORMATS)}")
        subtitle = self._circuit_breakers[provider_name].call(provider.download, result)
        events.provider_downloaded(provider=provider_name, fmt=subtitle["fmt"])
        return subtitle

    def breaker_states(self) -> dict[str, str]:
        return {name: breaker.state.value for name, breaker in self._circuit_breakers.items()}


def get_provider_manager():
    """The current app's manager (Sublarr: ``providers.get_provider_manager()``)."""
    from flask import current_app

    return current_app.extensions["provider_manager"]
