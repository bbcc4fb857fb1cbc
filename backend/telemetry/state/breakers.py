"""Circuit breaker states, read without changing them."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..labels import as_text

STATE_VALUES = {"closed": 0, "open": 1, "half_open": 2, "half-open": 2, "halfopen": 2}


@dataclass(frozen=True)
class BreakerReading:
    provider: str
    state: int


def state_value(state: Any) -> int | None:
    """0/1/2 for closed/open/half_open (strings or enums with such a name/value)."""
    for candidate in (state, getattr(state, "value", None), getattr(state, "name", None)):
        if isinstance(candidate, str) and candidate.lower() in STATE_VALUES:
            return STATE_VALUES[candidate.lower()]
    return None


def read_breakers(breakers: Mapping[str, Any],
                  on_error: Callable[[str], None] | None = None) -> tuple[BreakerReading, ...]:
    """Reads ``breaker.state`` (a property that must not transition the breaker).

    Each breaker alone: one whose ``state`` raises is passed to ``on_error``
    and the others are still read.
    """
    readings = []
    for name, breaker in list(breakers.items()):
        try:
            value = state_value(getattr(breaker, "state", None))
        except Exception as exc:  # noqa: BLE001 - one broken breaker must not hide the others
            if on_error is not None:
                on_error(f"breaker {as_text(name)!r}: {type(exc).__name__}: {exc}")
            continue
        if value is not None:
            readings.append(BreakerReading(as_text(name), value))
    return tuple(readings)
