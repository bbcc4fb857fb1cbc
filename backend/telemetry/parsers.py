"""Parsers of one environment value each, used by the settings table (:mod:`telemetry.variables`).

A parser takes the variable's text (trimmed, unless ``trims`` is false) and
returns the value a ``Settings`` field holds, or raises :class:`Refused`. Its
``accepted`` text is what :class:`~telemetry.variables.SettingsError` tells the
operator, and what the settings reference documents.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")

_DECIMAL = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+", re.ASCII)
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_ROUTE_PATH = re.compile(r"(/[A-Za-z0-9._~!$&'()*+,;=:@-]+)+/?|/", re.ASCII)
_REDIS_SCHEMES = ("redis", "rediss", "unix")

LISTEN_ACCEPTED = "HOST:PORT or :PORT with a port from 0 (any free one) to 65535"
ROUTE_PATH_ACCEPTED = ("a URL path starting with '/' of letters, digits and -._~!$&'()*+,;=:@ "
                       "between single slashes (no '<converter>', '%', '?', '#', '//', '.' or '..' segment)")


class Refused(ValueError):
    """The value is not one the parser takes; ``accepted``, when given, says more than the parser's own text."""

    def __init__(self, accepted: str | None = None):
        super().__init__(accepted)
        self.accepted = accepted


def encodable(text: str) -> bool:
    """False for lone surrogates: undecodable bytes in the environment."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Parser:
    accepted: str = ""
    trims = True  # leading and trailing whitespace is not part of the value, and a blank value is unset

    def __call__(self, text: str):  # pragma: no cover - every parser overrides it
        raise NotImplementedError


@dataclass(frozen=True)
class Flag(Parser):
    accepted = ", ".join(TRUE_WORDS + FALSE_WORDS)

    def __call__(self, text: str) -> bool:
        word = text.lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise Refused


@dataclass(frozen=True)
class OneOf(Parser):
    """One of ``choices``, case-insensitive unless ``exact`` (the OTLP protocol names are exact)."""

    choices: tuple[str, ...]
    exact: bool = False

    @property
    def accepted(self) -> str:
        return ", ".join(self.choices)

    def __call__(self, text: str) -> str:
        word = text if self.exact else text.lower()
        if word not in self.choices:
            raise Refused
        return word


@dataclass(frozen=True)
class Decimal(Parser):
    """A number within [low, high]; plain ASCII decimals only, as ``float()`` would
    also take ``nan``, ``1e3``, ``1_0`` and non-ASCII digits, which no operator
    means to write here."""

    low: float
    high: float
    unit: str

    @property
    def accepted(self) -> str:
        return f"a number of {self.unit} from {_number(self.low)} to {_number(self.high)}"

    def __call__(self, text: str) -> float:
        number = float(text) if _DECIMAL.fullmatch(text) else float("nan")
        if not self.low <= number <= self.high:
            raise Refused
        return number


def _number(value: float) -> str:
    """``5`` and ``3600000`` rather than ``5.0`` and ``3.6e+06``."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True)
class WholeNumber(Parser):
    low: int
    high: int

    @property
    def accepted(self) -> str:
        return f"a whole number from {self.low} to {self.high}"

    def __call__(self, text: str) -> int:
        # str.isdigit() also accepts digits int() refuses (superscripts) or reads as other numbers
        if not _DIGITS.fullmatch(text) or not self.low <= int(text) <= self.high:
            raise Refused
        return int(text)


@dataclass(frozen=True)
class Ratio(Parser):
    """A sampling ratio as the OpenTelemetry SDK reads it (``float()``), from 0 to 1."""

    accepted = "a sampling ratio from 0 to 1"

    def __call__(self, text: str) -> float:
        try:
            ratio = float(text)
        except ValueError:
            raise Refused from None
        if not 0.0 <= ratio <= 1.0:
            raise Refused
        return ratio


@dataclass(frozen=True)
class RoutePath(Parser):
    """The metrics path: literal, canonical and ASCII, since it becomes a route.

    ``<...>`` would be a Flask converter (every unknown URL then answered
    500), and a doubled slash or dot segment is never what a client sends.
    """

    accepted = ROUTE_PATH_ACCEPTED

    def __call__(self, text: str) -> str:
        segments = text.split("/")
        if not _ROUTE_PATH.fullmatch(text) or "." in segments or ".." in segments:
            raise Refused
        return text


@dataclass(frozen=True)
class PathPatterns(Parser):
    """Comma-separated URL paths, a trailing ``*`` marking a prefix; ``none`` (or a blank value) is no path."""

    accepted = "comma-separated URL paths starting with '/', a trailing '*' marks a prefix"
    trims = False  # set but blank means no path, not the default

    def __call__(self, text: str) -> tuple[str, ...]:
        if text.strip().lower() == "none":
            return ()
        items = tuple(item.strip() for item in text.split(",") if item.strip())
        for item in items:
            body = item[:-1] if item.endswith("*") else item
            if (not body.startswith("/") or any(c.isspace() for c in body) or "?" in body or "#" in body
                    or not encodable(body)):
                raise Refused(f"{self.accepted} (the entry {item!r} is not)")
        return items


@dataclass(frozen=True)
class Names(Parser):
    what: str = "names"  # what the items are, for the accepted text

    @property
    def accepted(self) -> str:
        return f"a comma-separated list of {self.what}"

    def __call__(self, text: str) -> tuple[str, ...]:
        return tuple(item.strip() for item in text.split(",") if item.strip())


@dataclass(frozen=True)
class Exporters(Parser):
    """A comma-separated list of exporter names, or ``none`` alone (no exporter)."""

    choices: tuple[str, ...]

    @property
    def accepted(self) -> str:
        return "a comma-separated list of " + ", ".join(self.choices)

    def __call__(self, text: str) -> tuple[str, ...]:
        items = tuple(dict.fromkeys(item.strip().lower() for item in text.split(",") if item.strip()))
        if not items or any(item not in self.choices for item in items):
            raise Refused
        if "none" in items and len(items) > 1:
            raise Refused("'none' alone, or a comma-separated list of "
                          + ", ".join(e for e in self.choices if e != "none"))
        return () if items == ("none",) else items


@dataclass(frozen=True)
class RedisUrl(Parser):
    """A URL redis-py's ``from_url`` takes: checked at start-up, not at the first scrape."""

    accepted = "a redis://, rediss:// or unix:// URL (redis://[:password@]host[:port][/db])"

    def __call__(self, text: str) -> str:
        from urllib.parse import urlsplit

        try:
            url = urlsplit(text)
            url.port  # noqa: B018 - raises ValueError for a port that is not a number in range
        except ValueError:
            raise Refused from None
        if url.scheme not in _REDIS_SCHEMES or not (url.hostname or url.path) or not encodable(text):
            raise Refused
        path = url.path.lstrip("/")
        if url.scheme != "unix" and path and not _DIGITS.fullmatch(path):
            raise Refused(self.accepted + " with a database number")
        return text


@dataclass(frozen=True)
class Listen(Parser):
    accepted = LISTEN_ACCEPTED

    def __call__(self, text: str) -> tuple[str, int]:
        host, _, port = text.rpartition(":")
        host = host.strip("[]") or "0.0.0.0"
        if (not _DIGITS.fullmatch(port) or not 0 <= int(port) < 65536 or not encodable(host)
                or any(c.isspace() or c in "/[]@" for c in host)):
            raise Refused
        return host, int(port)


@dataclass(frozen=True)
class Text(Parser):
    """Any text here; whether ``accepted`` holds depends on other variables, so a cross-field rule checks it."""

    accepted: str = "text"

    def __call__(self, text: str) -> str:
        return text


@dataclass(frozen=True)
class Utf8Text(Parser):
    """Text a library reads as it is: it must encode as UTF-8 (an OTLP export of it would fail)."""

    accepted = "UTF-8 text (the environment holds bytes that are not)"
    trims = False

    def __call__(self, text: str) -> str:
        if not encodable(text):
            raise Refused
        return text


@dataclass(frozen=True)
class SecretFile(Parser):
    """The secret in the file a path names, read as Prometheus reads ``credentials_file``:
    UTF-8, and leading and trailing whitespace (a final newline) is not part of it."""

    accepted = "a readable file holding a UTF-8 secret"

    def __call__(self, path: str) -> str:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise Refused(f"a readable file ({exc.strerror})") from None
        except ValueError:  # open() refuses a NUL character, which only a mapping in code can hold
            raise Refused("a readable file (a path without NUL characters)") from None
        try:
            secret = data.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise Refused("a file holding UTF-8 text (this one is not)") from None
        if not secret:
            raise Refused("a file holding a non-empty secret")
        return secret


__all__ = [
    "Decimal", "Exporters", "FALSE_WORDS", "Flag", "LISTEN_ACCEPTED", "Listen", "Names", "OneOf", "Parser",
    "PathPatterns", "ROUTE_PATH_ACCEPTED", "Ratio", "RedisUrl", "Refused", "RoutePath", "SecretFile",
    "TRUE_WORDS", "Text", "Utf8Text", "WholeNumber", "encodable",
]
