"""Circuit breaker states, read without changing them."""
from __future__ import annotations

from collections.abc import Mapping
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


def read_breakers(breakers: Mapping[str, Any]) -> tuple[BreakerReading, ...]:
    """Reads ``breaker.state`` (a property that must not transition the breaker)."""
    readings = []
    for name, breaker in list(breakers.items()):
        value = state_value(getattr(breaker, "state", None))
        if value is not None:
            readings.append(BreakerReading(as_text(name), value))
    return tuple(readings)
