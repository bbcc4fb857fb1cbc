"""Keeping label values inside the catalog's bounds at record time."""
from __future__ import annotations

import threading
from collections.abc import Iterable

from .catalog import Label
from .labels import as_text


class BoundedValues:
    """Maps raw values of one label onto a bounded set.

    Closed labels map anything unknown to their fallback. Dynamic labels accept
    the values they were seeded with plus new ones up to the label's cap, then
    fold the rest into the fallback, so a misbehaving caller cannot create
    series without limit.
    """

    def __init__(self, label: Label, seed: Iterable[str] = ()):
        self.label = label
        self._known = set(seed)
        self._lock = threading.Lock()

    def __call__(self, value: object) -> str:
        text = value if isinstance(value, str) else as_text(value)
        label = self.label
        if label.values is not None:
            if text in label.values:
                return text
            lowered = text.lower()
            if lowered in label.values:
                return lowered
            return label.fallback if label.fallback is not None else text
        if text in self._known:
            return text
        if not label.dynamic or not text:
            return label.fallback or text
        with self._lock:
            if text in self._known:
                return text
            if label.cap and len(self._known) >= label.cap:
                return label.fallback or text
            self._known.add(text)
            return text
