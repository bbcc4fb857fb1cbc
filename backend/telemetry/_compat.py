"""Private names of other code that discovery relies on, kept in one place.

Sublarr (v0.33) keeps its provider circuit breakers in the provider manager's
private ``_circuit_breakers`` dict and offers no public accessor. Reading it
is the only way to report breaker states without editing Sublarr; when the
name disappears, :func:`sublarr_breakers` says so (the breakers source then
reports itself down) instead of the family vanishing silently.
tests/telemetry/test_compat.py fails when this shape stops matching the
reference app, which mirrors Sublarr's.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SUBLARR_BREAKERS_ATTRIBUTE = "_circuit_breakers"
"""ProviderManager._circuit_breakers: provider name -> CircuitBreaker (``state.value``)."""


class ShapeChanged(LookupError):
    """An object is there, but not in the shape discovery knows."""


def sublarr_breakers(manager: Any) -> Mapping[str, Any]:
    """The breaker mapping of Sublarr's provider manager, or :class:`ShapeChanged`."""
    breakers = getattr(manager, SUBLARR_BREAKERS_ATTRIBUTE, None)
    if not isinstance(breakers, Mapping):
        raise ShapeChanged(f"{type(manager).__name__} has no mapping {SUBLARR_BREAKERS_ATTRIBUTE!r} "
                           "(the provider manager changed shape)")
    return breakers
