"""Time-bounded, isolated reading of external state for observable callbacks.

Observable callbacks run inside the scrape, one after another under one SDK
lock, so a slow read stalls every series and a hung one fails the scrape. A
:class:`Source` therefore reads in its own thread and the scrape waits at most
``budget`` seconds for it. When the read is late or fails, the scrape gets the
last good reading while it is younger than ``stale_after`` (then nothing), the
source is marked down in the self-metrics, and the failure is logged once per
distinct message, with a second line when the source recovers. A hung read
keeps its one thread; no second read of that source starts until it returns,
so threads never pile up.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
_log = logging.getLogger(__name__)


@dataclass
class SourceHealth:
    up: bool = True
    errors: int = 0
    last_error: str | None = None
    reported: set[str] = field(default_factory=set)


class Source(Generic[T]):
    """One piece of external state, read on demand within a time budget."""

    def __init__(self, name: str, read: Callable[[], T], *, budget: float = 1.0,
                 max_age: float = 1.0, stale_after: float = 300.0, inline: bool = False,
                 clock: Callable[[], float] = time.monotonic, logger: logging.Logger = _log):
        if stale_after < max_age:  # a reading too recent to refresh would already be withheld
            raise ValueError(f"source {name!r}: stale_after ({stale_after:g}s) is below max_age ({max_age:g}s); "
                             "its series would vanish between reads")
        self.name = name
        self._read = read
        self.budget = budget
        self.max_age = max_age
        self.stale_after = stale_after
        self.inline = inline
        self._clock = clock
        self._log = logger
        self._lock = threading.Lock()
        self._value: T | None = None
        self._value_at: float | None = None
        self._checked_at: float | None = None
        self._inflight: threading.Event | None = None
        self._inflight_since = 0.0
        self._pid = os.getpid()
        self._closed = False
        self.health = SourceHealth()

    def invalidate(self) -> None:
        """The next get() reads again (the reading it replaces stays served until then)."""
        with self._lock:
            self._checked_at = None

    def close(self) -> None:
        """From now on serve the last reading and start no reads: at interpreter
        exit no thread can be started, and the final export must not wait."""
        self._closed = True

    # public -------------------------------------------------------------
    def kick(self) -> None:
        """Start a refresh in the background if one is due; never waits.

        Kicking every source at the start of a collect lets slow sources
        overlap, so a scrape waits about one budget, not one per source.
        """
        if self.inline or self._closed:
            return
        with self._lock:
            self._after_fork()
            if self._fresh(self._clock()) or self._inflight is not None:
                return
            done = self._start_locked()
        self._launch(done)

    def get(self) -> T | None:
        """A reading no older than ``max_age`` if one can be had within ``budget``."""
        now = self._clock()
        if self._closed and not self.inline:
            with self._lock:
                return self._usable(now)
        with self._lock:
            self._after_fork()
            if self._fresh(now):
                return self._usable(now)
            done = self._inflight
            started_here = done is None
            if started_here:
                done = self._start_locked()
            remaining = self.budget - (now - self._inflight_since)
        if started_here:
            self._launch(done)
        if remaining <= 0 or not done.wait(remaining):
            self._failed(f"no answer within {self.budget:g}s")
        with self._lock:
            return self._usable(self._clock())

    # internals ----------------------------------------------------------
    def _fresh(self, now: float) -> bool:
        return self._checked_at is not None and now - self._checked_at < self.max_age

    def _start_locked(self) -> threading.Event:
        done = self._inflight = threading.Event()
        self._inflight_since = self._clock()
        return done

    def _launch(self, done: threading.Event) -> None:
        if self.inline:
            self._refresh(done)
        else:
            threading.Thread(target=self._refresh, args=(done,), name=f"telemetry-{self.name}",
                             daemon=True).start()

    def _usable(self, now: float) -> T | None:
        if self._value_at is None or now - self._value_at > self.stale_after:
            return None
        return self._value

    def _after_fork(self) -> None:
        if os.getpid() != self._pid:  # a child must not wait for its parent's thread
            self._pid, self._inflight, self._checked_at = os.getpid(), None, None

    def _refresh(self, done: threading.Event) -> None:
        try:
            value = self._read()
        except Exception as exc:  # noqa: BLE001 - isolated: only this source's series suffer
            self._failed(f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__)
        else:
            with self._lock:
                self._value, self._value_at = value, self._clock()
            self._succeeded()
        finally:
            with self._lock:
                self._checked_at = self._clock()
                if self._inflight is done:
                    self._inflight = None
            done.set()

    def _failed(self, message: str) -> None:
        with self._lock:
            health = self.health
            health.errors += 1
            health.up = False
            health.last_error = message
            new = message not in health.reported
            if new and len(health.reported) < 100:
                health.reported.add(message)
        if new:
            stale = "the last good reading is served while it is recent" if self._value_at else "its series are absent"
            self._log.warning("telemetry source %r failed: %s (%s; logged once per distinct failure)",
                              self.name, message, stale)

    def _succeeded(self) -> None:
        with self._lock:
            recovered = not self.health.up
            self.health.up = True
        if recovered:
            self._log.warning("telemetry source %r recovered", self.name)

    def report(self, message: str, error: bool = False) -> None:
        """A reading arrived but part of it failed: log once, keep the source up.

        ``error``: also count it in the source's errors (a configured item,
        such as one disk path, could not be read).
        """
        with self._lock:
            if error:
                self.health.errors += 1
            new = message not in self.health.reported
            if new and len(self.health.reported) < 100:
                self.health.reported.add(message)
        if new:
            self._log.warning("telemetry source %r: %s (logged once)", self.name, message)


def constant(name: str, value: Any, clock: Callable[[], float] = time.monotonic) -> Source:
    """A source whose reading never changes (static facts): read once, served for ever."""
    return Source(name, lambda: value, inline=True, max_age=float("inf"), stale_after=float("inf"), clock=clock)
