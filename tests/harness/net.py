"""Ports, waiting and "does it answer", without pytest (the server classes use them too)."""
from __future__ import annotations

import socket
import time
import urllib.request


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    """``predicate()``'s first truthy value, polled every ``interval``; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def answers_ok(url: str, timeout: float = 2.0) -> bool:
    """``url`` answers 200 within ``timeout`` (False while it refuses, errs or times out)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (OSError, ValueError):  # HTTPError is an OSError
        return False


def get_text(url: str, timeout: float = 5.0) -> str | None:
    """``url``'s body when it answers 200, else None (refused, erring or timing out)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read().decode("utf-8", "replace") if response.status == 200 else None
    except (OSError, ValueError):
        return None
