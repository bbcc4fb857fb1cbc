"""This process's CPU and memory, and disk usage of configured paths."""
from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcessReading:
    cpu_percent: float
    rss_bytes: int


@dataclass(frozen=True)
class DiskReading:
    path: str
    used_percent: float


class ProcessSampler:
    """CPU use of this process between readings, in percent of one core.

    The first reading covers the time since the process started (not 0, and
    not host-wide): it is the process's average so far.
    """

    def __init__(self, clock=time.monotonic, cpu_clock=time.process_time):
        self._clock, self._cpu_clock = clock, cpu_clock
        self._lock = threading.Lock()
        self._last: tuple[float, float] | None = None
        self._pid = os.getpid()
        try:
            import psutil
            self._process = psutil.Process()
            self._started_wall = self._process.create_time()
        except Exception:  # psutil missing or restricted: fall back to /proc
            self._process = None
            self._started_wall = None

    def _since_start(self) -> float:
        if self._started_wall is None:
            return 0.0
        return max(time.time() - self._started_wall, 1e-6)

    def read(self) -> ProcessReading:
        with self._lock:
            if os.getpid() != self._pid:  # forked: the parent's baseline is not ours
                self.__init__(self._clock, self._cpu_clock)
            now, cpu = self._clock(), self._cpu_clock()
            if self._last is None:
                elapsed = self._since_start() or 1e-6
                used = cpu
            else:
                elapsed, used = now - self._last[0], cpu - self._last[1]
            self._last = (now, cpu)
        percent = 100.0 * used / elapsed if elapsed > 0 else 0.0
        return ProcessReading(cpu_percent=max(percent, 0.0), rss_bytes=self._rss())

    def _rss(self) -> int:
        if self._process is not None:
            return int(self._process.memory_info().rss)
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def mount_label(entry: str) -> tuple[str, str]:
    """``label=/path`` -> (label, path); a plain path is its own label."""
    label, sep, path = entry.partition("=")
    return (label, path) if sep and label and path.startswith("/") else (entry, entry)


@dataclass(frozen=True)
class DiskReadings:
    """Every path read alone: one missing or unreadable path hides none of the others."""

    disks: tuple[DiskReading, ...]
    errors: tuple[str, ...] = ()


def read_disks(paths: Iterable[str]) -> DiskReadings:
    """``DiskReading.path`` carries the ``mount`` label (``config`` for ``config=/config``)."""
    readings, errors = [], []
    for entry in paths:
        label, path = mount_label(entry)
        try:
            usage = shutil.disk_usage(path)
        except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
            errors.append(f"disk path {path!r}: {type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}")
            continue
        readings.append(DiskReading(label, 100.0 * usage.used / usage.total if usage.total else 0.0))
    return DiskReadings(tuple(readings), tuple(errors))
