"""The cached encoder: the hot families' exposition text without per-sample work that never changes.

Why: prometheus_client's encoders validate, sort, escape and format every
label of every sample on every scrape; at 1,000 label sets that was two
thirds of a scrape. A label set's text never changes once its row exists,
so it is built once (escaped, sorted, split around ``le``) and kept beside
the row; a scrape then only formats the numbers. The SDK's other families
(a few dozen series) are still encoded by prometheus_client's own encoder,
with the negotiated escaping and version, and spliced in.

The output is byte for byte what prometheus_client's ``generate_latest`` and
``openmetrics.generate_latest`` write for the same families (the generic
path, :meth:`telemetry.direct.DirectSource.collect`); a differential property
test holds it to that. It is used only where that holds: text 0.0.4 and
1.0.0 and OpenMetrics 1.0.0 with the ``underscores`` or ``allow-utf-8``
escaping (the legacy names of the hot families read the same under both).
Other negotiations (``dots``, ``values``) take the generic path.

Exemplars (only with tracing on, and only in OpenMetrics: the text format
has none) end a bucket line, ``# {span_id="...",trace_id="..."} value
timestamp``, as prometheus_client writes them; both paths take them from
:func:`telemetry.direct.bucket_exemplars`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from prometheus_client.exposition import choose_encoder
from prometheus_client.utils import floatToGoString

if TYPE_CHECKING:  # only prometheus_client at import: the 503 answer works without the SDK
    from .direct import DirectSource, HotFamily
    from prometheus_client.samples import Exemplar
    from .histograms import RowSnapshot

TEXT = "text"
OPENMETRICS = "openmetrics"
UNDERSCORES = "underscores"
ALLOW_UTF8 = "allow-utf-8"
_EOF = b"# EOF\n"


# numbers and escaping, as Prometheus' text formats write them ------------------
go_float = floatToGoString
"""Sample values as the installed prometheus_client writes them (its public ``utils`` helper):
its exponent form changed in 0.26 (``1e+010`` became Go's ``1e+10``), and the two
paths must agree whatever version is installed."""

_SMALL_COUNTS = tuple(f"{n}.0" for n in range(4096))


def count_text(count: int) -> str:
    """A non-negative integer count as :func:`go_float` writes it, without the float detour when small
    (below a million, Go and every prometheus_client write ``<n>.0``)."""
    if count < 4096:
        return _SMALL_COUNTS[count]
    return f"{count}.0" if count < 1_000_000 else go_float(count)


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def exemplar_text(exemplar: "Exemplar") -> str:
    """`` # {labels} value timestamp``: an OpenMetrics exemplar as prometheus_client writes it."""
    labels = ",".join(f'{name}="{escape_label_value(value)}"' for name, value in sorted(exemplar.labels.items()))
    if exemplar.timestamp is None:
        return f" # {{{labels}}} {go_float(exemplar.value)}"
    return f" # {{{labels}}} {go_float(exemplar.value)} {exemplar.timestamp}"


def escape_help(text: str, fmt: str) -> str:
    """HELP text: the text format escapes backslash and newline, OpenMetrics also the double quote."""
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if fmt == OPENMETRICS else text


# content negotiation ---------------------------------------------------------------
@dataclass(frozen=True)
class Negotiated:
    """What a scrape's ``Accept`` header gets: prometheus_client's encoder and content type,
    and the cached encoder's format when it writes the same bytes (else ``None``)."""
    encoder: Callable
    content_type: str
    fast_format: str | None


def negotiate(accept: str | None) -> Negotiated:
    """prometheus_client's own negotiation, then whether the cached encoder can serve it."""
    encoder, content_type = choose_encoder(accept or "")
    media, *params = [part.strip() for part in content_type.split(";")]
    options = dict(part.split("=", 1) for part in params if "=" in part)
    fast_format = None
    if options.get("escaping", UNDERSCORES) in (UNDERSCORES, ALLOW_UTF8):
        if media == "text/plain" and options.get("version") in ("0.0.4", "1.0.0"):
            fast_format = TEXT
        elif media == "application/openmetrics-text" and options.get("version") == "1.0.0":
            fast_format = OPENMETRICS
    return Negotiated(encoder, content_type, fast_format)


# the encoder -------------------------------------------------------------------------
class _Families:
    """A collector over already collected families (what prometheus_client's encoders take)."""

    def __init__(self, families: list):
        self.families = families

    def collect(self):
        return self.families


class _FamilyText:
    """The unchanging text of one hot family: headers per format, and each row's label text."""

    def __init__(self, family: HotFamily):
        self.family = family
        histogram, counter = family.histogram.name, family.counter.name if family.counter else ""
        self.counter_sample = counter
        self.bucket_sample = histogram + "_bucket"
        self.count_sample = histogram + "_count"
        self.sum_sample = histogram + "_sum"
        self.le_parts = tuple(f'le="{le}"' for le in family.le_texts)
        self.le_position = sum(1 for key in family.sorted_keys if key < "le")
        self.headers = {fmt: self._headers(fmt) for fmt in (TEXT, OPENMETRICS)}
        self.rows: dict[tuple, tuple[str, str, str]] = {}  # key -> (labels, before le, after le)

    def _headers(self, fmt: str) -> tuple[str, str]:
        family = self.family
        counter_header = ""
        if family.counter is not None:
            name = family.counter.name if fmt == TEXT else family.counter.name[:-len("_total")]
            counter_header = (f"# HELP {name} {escape_help(family.counter.description, fmt)}\n"
                              f"# TYPE {name} counter\n")
        name = family.histogram.name
        histogram_header = f"# HELP {name} {escape_help(family.histogram.description, fmt)}\n# TYPE {name} histogram\n"
        if fmt == OPENMETRICS:
            histogram_header += f"# UNIT {name} {family.unit}\n"
        return counter_header, histogram_header

    def row_text(self, key: tuple) -> tuple[str, str, str]:
        """``{a="x",b="y"}``, ``{a="x",`` and ``,b="y"}`` for the ``le`` of each bucket in between."""
        text = self.rows.get(key)
        if text is None:
            items = [f'{name}="{escape_label_value(value)}"'
                     for name, value in zip(self.family.sorted_keys, self.family.sorted_values(key))]
            before, after = ",".join(items[:self.le_position]), ",".join(items[self.le_position:])
            text = self.rows[key] = ("{" + ",".join(items) + "}" if items else "",
                                     "{" + before + "," if before else "{",
                                     "," + after + "}" if after else "}")
        return text

    def counter_lines(self, rows: list[RowSnapshot], fmt: str, out: list[str]) -> None:
        out.append(self.headers[fmt][0])
        name, row_text = self.counter_sample, self.row_text
        out.extend([f"{name}{row_text(row.key)[0]} {count_text(row.count)}\n" for row in rows])

    def histogram_lines(self, rows: list[RowSnapshot], fmt: str, out: list[str]) -> None:
        out.append(self.headers[fmt][1])
        bucket, count_name, sum_name, le_parts = self.bucket_sample, self.count_sample, self.sum_sample, self.le_parts
        row_text, append, extend = self.row_text, out.append, out.extend
        exemplars = fmt == OPENMETRICS
        for row in rows:
            labels, low, high = row_text(row.key)
            cumulative = 0
            lines = []
            for le, count in zip(le_parts, row.counts):
                cumulative += count
                lines.append(f"{bucket}{low}{le}{high} {count_text(cumulative)}\n")
            if exemplars and row.exemplars:
                from .direct import bucket_exemplars

                for index, exemplar in bucket_exemplars(self.family.table.bounds, row.exemplars).items():
                    lines[index] = lines[index][:-1] + exemplar_text(exemplar) + "\n"
            extend(lines)
            append(f"{count_name}{labels} {count_text(row.count)}\n")
            append(f"{sum_name}{labels} {go_float(row.sum)}\n")


class CachedExposition:
    """Renders a :class:`~telemetry.direct.DirectSource` with the label text of every row cached.

    Not thread-safe: the renderer calls it under its scrape lock.
    """

    def __init__(self, source: DirectSource):
        self.source = source
        self._texts: dict[int, _FamilyText] = {}

    def _text(self, family: HotFamily) -> _FamilyText:
        text = self._texts.get(id(family.table))  # tables live as long as the pipeline
        if text is None:
            text = self._texts[id(family.table)] = _FamilyText(family)
        return text

    def render(self, negotiated: Negotiated) -> bytes:
        fmt = negotiated.fast_format
        if fmt is None:
            raise ValueError(f"the cached encoder does not write {negotiated.content_type}")
        gathered = self.source.gather()
        head: list[str] = []
        tail: list[str] = []
        for family, rows in gathered.hot:
            text = self._text(family)
            if family.counter is not None:
                text.counter_lines(rows, fmt, head)
            text.histogram_lines(rows, fmt, tail)
        middle = negotiated.encoder(_Families(gathered.sdk_families))
        if fmt == OPENMETRICS:
            middle = middle[:-len(_EOF)]
        parts = ["".join(head).encode(), middle, "".join(tail).encode()]
        if fmt == OPENMETRICS:
            parts.append(_EOF)
        return b"".join(parts)
