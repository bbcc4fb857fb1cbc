"""The one boundary where label values are made safe to expose.

Why: a single label value that cannot be encoded (a lone surrogate from a
``surrogateescape``-decoded path, undecodable bytes) made every later scrape
fail, in both exposition formats, until the process restarted; over OTLP the
protobuf encoder refuses it the same way. So every label value of every
family is passed through :meth:`LabelSanitizer.clean` before it reaches the
SDK: the series guards (:mod:`telemetry.cardinality`) call it the first time
they see a label set (events, jobs, and the HTTP and query keys at drain
time, never on the request path), and the callback layer calls it for each
observation of state read from sources. What leaves here is valid UTF-8 of
bounded length, so encoders downstream need no checks of their own.

Rules: surrogates (undecodable bytes, lone halves of a pair) become U+FFFD;
values longer than :data:`MAX_VALUE_CHARS` are cut (a scrape config
with ``label_value_length_limit`` rejects the whole scrape otherwise).
Control characters stay: both exposition formats escape or carry them, and
Prometheus and promtool read them back unchanged. Each
distinct value rewritten is counted once per family in
``sublarr_telemetry_label_values_sanitized_total`` and the first rewrite of a
family is logged.
"""
from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from . import catalog

_log = logging.getLogger(__name__)

MAX_VALUE_CHARS = 256
REPLACEMENT = "\ufffd"
_SURROGATES = re.compile("[\ud800-\udfff]")
_MEMO_LIMIT = 4096


def as_text(value: object) -> str:
    """Any value as text, never raising: bytes keep their undecodable bytes as
    surrogates (so :func:`clean_value` sees and counts them), not ``"b'...'"``."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "surrogateescape")
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - a broken __str__ must not break the caller
        return f"<{type(value).__name__}>"


def clean_value(text: str) -> str:
    """``text`` as valid UTF-8 of at most :data:`MAX_VALUE_CHARS` characters."""
    if len(text) <= MAX_VALUE_CHARS and (text.isascii() or text.isprintable()):
        return text  # the common case; str.isprintable is False for every surrogate
    cleaned = _SURROGATES.sub(REPLACEMENT, text)
    return cleaned if len(cleaned) <= MAX_VALUE_CHARS else cleaned[: MAX_VALUE_CHARS - 1] + "\u2026"


class LabelSanitizer:
    """Cleans label values for one pipeline and counts what it rewrote."""

    def __init__(self):
        self._memo: dict[str, str] = {}
        self._counts: dict[str, int] = {}
        self._counted: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def watch(self, family: str) -> None:
        """A family that reads 0 until its first rewrite, so 'nothing rewritten' is visible
        (and ``increase()`` sees the first one)."""
        with self._lock:
            self._counts.setdefault(family, 0)

    def clean(self, family: str, values: tuple) -> tuple[str, ...]:
        """``values`` (one label set, in label-key order) with every value made safe.

        ``values`` itself when nothing changed, so a guard keeps one tuple per label set.
        """
        cleaned = tuple(self.clean_one(family, value) for value in values)
        return values if cleaned == values else cleaned

    def clean_attributes(self, family: str, attributes: Mapping[str, object]) -> dict[str, str]:
        return {key: self.clean_one(family, value) for key, value in attributes.items()}

    def clean_one(self, family: str, value: object) -> str:
        text = value if isinstance(value, str) else as_text(value)
        cleaned = self._memo.get(text)
        if cleaned is None:
            cleaned = clean_value(text)
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            self._memo[text] = cleaned
        if cleaned is not text and cleaned != text:
            self._count(family, text)
        return cleaned

    def _count(self, family: str, text: str) -> None:
        with self._lock:
            if (family, text) in self._counted:
                return
            if len(self._counted) < _MEMO_LIMIT:
                self._counted.add((family, text))
            first = not self._counts.get(family)
            self._counts[family] = self._counts.get(family, 0) + 1
        if first:
            _log.warning("sublarr telemetry: a label value of %s was not valid UTF-8 or longer than %d "
                         "characters and was rewritten (%r); counted in "
                         "sublarr_telemetry_label_values_sanitized_total, logged once per family",
                         family, MAX_VALUE_CHARS, text[:80])

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def register(self, meter: Meter) -> None:
        """Register the self-metric after every other instrument (it observes their rewrites)."""
        fam = catalog.family("sublarr_telemetry_label_values_sanitized_total")
        meter.create_observable_counter(fam.instrument_name, callbacks=[self._observe],
                                        unit=fam.unit, description=fam.description)

    def _observe(self, options: CallbackOptions):
        return [Observation(n, {"family": name}) for name, n in self.counts().items()]
