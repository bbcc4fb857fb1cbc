"""The environment variables telemetry reads: one table, as the catalog is for metric names.

Each :class:`Variable` names the ``Settings`` fields it fills, its parser
(which says what it accepts), its default and what it is for. The table
drives :meth:`telemetry.settings.Settings.from_env`, the dataclass defaults,
the text of every :class:`SettingsError`, and the settings reference in
docs/settings.md (``sublarr-telemetry settings --write-docs``).
Where variables decide fields together (auth mode and credentials, sampler and
ratio, signal-specific before generic OTLP protocol) the entries name the
:class:`Rule` that does. Entries without a parser are read by an
OpenTelemetry library itself and are listed so that they are documented.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from .catalog import SERVICE_NAME_DEFAULT
from .parsers import (
    Decimal, Exporters, Flag, Listen, Names, OneOf, Parser, PathPatterns, Ratio, RedisUrl, Refused, RoutePath,
    SecretFile, Text, Utf8Text, WholeNumber, encodable,
)

_log = logging.getLogger(__name__)


class SettingsError(ValueError):
    """An environment variable holds a value this module cannot use."""

    def __init__(self, variable: str, value: str, accepted: str):
        self.variable = variable
        self.value = value
        self.accepted = accepted
        super().__init__(f"{variable}={value!r} is invalid: accepted values are {accepted}")


class Reader:
    """The environment seen through the table: each variable's text, given-ness and parsed value."""

    def __init__(self, env: Mapping[str, str]):
        self.env = env

    def text(self, name: str) -> str | None:
        """The variable's text as its parser takes it; None when unset (or blank, for trimmed ones)."""
        value = self.env.get(name)
        if value is None or not BY_NAME[name].parse.trims:
            return value
        return value.strip() or None

    def given(self, name: str) -> bool:
        return self.text(name) is not None

    def read(self, name: str):
        """The parsed value, the table's default when unset, or a SettingsError naming the variable."""
        variable, text = BY_NAME[name], self.text(name)
        if text is None:
            return variable.default
        try:
            return variable.parse(text)
        except Refused as refused:
            raise SettingsError(name, text, refused.accepted or variable.parse.accepted) from None


@dataclass(frozen=True, eq=False)
class Rule:
    """Variables that decide ``fields`` together; ``decide`` returns their values."""

    fields: tuple[str, ...]
    decide: Callable[[Reader], dict]
    summary: str
    """Shown in docs/settings.md beside the first variable that names the rule; '' when the descriptions say it."""


@dataclass(frozen=True)
class Variable:
    """One environment variable; its parser's ``accepted`` is the text of its SettingsError."""

    name: str
    fields: tuple[str, ...]
    """The ``Settings`` fields it fills (empty: checked only, or read by a library)."""
    parse: Parser | None
    """None: read by an OpenTelemetry library itself, documented here only."""
    default: object
    description: str
    rules: tuple[Rule, ...] = ()
    shown_default: str | None = None
    """The default as documented, when another part decides it (the SDK, discovery)."""

    @property
    def accepted(self) -> str:
        return self.parse.accepted if self.parse is not None else "read by OpenTelemetry itself"


# -- cross-field rules --------------------------------------------------------------------------

AUTH_MODES = ("none", "bearer", "basic")
TOKEN_ACCEPTED = ("a token of visible ASCII characters (no spaces or control characters), as an HTTP "
                  "Authorization header carries it")
PASSWORD_ACCEPTED = "UTF-8 text without control characters"
USERNAME_ACCEPTED = "a user name of UTF-8 text without ':' or control characters"
_TOKEN = re.compile(r"[\x21-\x7e]+", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class _Hidden(str):
    """A secret in an error message: shown as its length, never its text."""

    def __repr__(self) -> str:
        return f"<{len(self)} characters, not shown>"


def _secret(read: Reader, name: str) -> str | None:
    """``NAME`` or the contents of the file named by ``NAME_FILE`` (never both)."""
    if read.given(name) and read.given(name + "_FILE"):
        raise SettingsError(name + "_FILE", read.text(name + "_FILE"), f"unset when {name} is set (use one of them)")
    return read.read(name + "_FILE") or read.read(name)


def _check_secret(name: str, secret: str | None, token: bool) -> None:
    """Tokens travel as visible ASCII; basic-auth parts as UTF-8 without control characters."""
    if secret is None:
        return
    if token and not _TOKEN.fullmatch(secret):
        raise SettingsError(name, _Hidden(secret), TOKEN_ACCEPTED)
    if not token and (_CONTROL.search(secret) or not encodable(secret)):
        raise SettingsError(name, _Hidden(secret), PASSWORD_ACCEPTED)


def _auth(read: Reader) -> dict:
    """The scrape protection; a credential is never ignored.

    With ``SUBLARR_METRICS_AUTH`` unset, a token alone means bearer and a
    password alone means basic (logged); ``none`` beside a credential, or both
    kinds without a mode, is refused: metrics must not be served openly by
    someone who set a secret.
    """
    token, password = _secret(read, "SUBLARR_METRICS_TOKEN"), _secret(read, "SUBLARR_METRICS_PASSWORD")
    _check_secret("SUBLARR_METRICS_TOKEN", token, token=True)
    _check_secret("SUBLARR_METRICS_PASSWORD", password, token=False)
    mode, given = read.read("SUBLARR_METRICS_AUTH"), read.text("SUBLARR_METRICS_AUTH")
    if given is None and token and password:
        raise SettingsError("SUBLARR_METRICS_AUTH", "", "bearer or basic: both a token and a password are "
                            "set, so say which protects the metrics path")
    if given is None and (token or password):
        mode = "bearer" if token else "basic"
        _log.warning("sublarr telemetry: SUBLARR_METRICS_AUTH is unset but %s is set: the metrics path "
                     "requires %s auth (set SUBLARR_METRICS_AUTH=%s to say so)",
                     "SUBLARR_METRICS_TOKEN" if token else "SUBLARR_METRICS_PASSWORD", mode, mode)
    if mode == "none" and (token or password):
        raise SettingsError("SUBLARR_METRICS_AUTH", given, "bearer or basic while "
                            + ("SUBLARR_METRICS_TOKEN" if token else "SUBLARR_METRICS_PASSWORD")
                            + " is set (unset the credential to serve metrics without auth)")
    username = read.read("SUBLARR_METRICS_USERNAME")
    if mode == "bearer" and not token:
        raise SettingsError("SUBLARR_METRICS_TOKEN", "", "a token (or SUBLARR_METRICS_TOKEN_FILE) "
                            "when SUBLARR_METRICS_AUTH=bearer")
    if mode == "basic" and not password:
        raise SettingsError("SUBLARR_METRICS_PASSWORD", "", "a password (or SUBLARR_METRICS_PASSWORD_FILE) "
                            "when SUBLARR_METRICS_AUTH=basic")
    if mode == "basic" and (":" in username or _CONTROL.search(username) or not encodable(username)):
        raise SettingsError("SUBLARR_METRICS_USERNAME", username, USERNAME_ACCEPTED)
    return {"auth": mode, "token": token, "username": username, "password": password}


def check_auth(auth: str, token: str | None, password: str | None) -> None:
    """The auth rule for settings built in code: a known mode, and a credential is never ignored."""
    if auth not in AUTH_MODES:
        raise SettingsError("SUBLARR_METRICS_AUTH", auth, ", ".join(AUTH_MODES))
    if auth == "none" and (token or password):
        raise SettingsError("SUBLARR_METRICS_AUTH", "none", "bearer or basic when a token or password is set")
    if auth == "bearer" and not token:
        raise SettingsError("SUBLARR_METRICS_TOKEN", "", "a token when SUBLARR_METRICS_AUTH=bearer")
    if auth == "basic" and not password:
        raise SettingsError("SUBLARR_METRICS_PASSWORD", "", "a password when SUBLARR_METRICS_AUTH=basic")


def _sampler(read: Reader) -> dict:
    """The ratio belongs to the ratio samplers only: other samplers ignore it, as the specification says."""
    name, ratio = read.read("OTEL_TRACES_SAMPLER"), BY_NAME["OTEL_TRACES_SAMPLER_ARG"].default
    if name.endswith("traceidratio"):
        try:
            ratio = read.read("OTEL_TRACES_SAMPLER_ARG")
        except SettingsError as exc:
            raise SettingsError(exc.variable, exc.value, f"{exc.accepted} for {name}") from None
    return {"traces_sampler": name, "traces_sampler_ratio": ratio}


def _metrics_path(read: Reader) -> dict:
    """Unset, the path is the default one, which an app's own metrics route keeps (telemetry.extension)."""
    return {"path": read.read("SUBLARR_METRICS_PATH"), "path_explicit": read.given("SUBLARR_METRICS_PATH")}


def _signal_first(field: str, signal_variable: str) -> Rule:
    """The signal's own OTLP variable, else the generic one, as the OpenTelemetry exporters read them."""
    def decide(read: Reader) -> dict:
        chosen = signal_variable if read.given(signal_variable) else "OTEL_EXPORTER_OTLP_PROTOCOL"
        return {field: read.read(chosen)}
    return Rule((field,), decide, "")  # the generic variable's description says it


AUTH = Rule(("auth", "token", "username", "password"), _auth,
            "unset with only a token (password) set means `bearer` (`basic`), logged; `none` beside a "
            "credential, or a token and a password without a mode, stops the start")
SAMPLER = Rule(("traces_sampler", "traces_sampler_ratio"), _sampler,
               "the ratio counts for the `traceidratio` samplers only")
METRICS_PATH = Rule(("path", "path_explicit"), _metrics_path,
                    "unset, an app with its own metrics route keeps it as the only one")
METRICS_PROTOCOL = _signal_first("otlp_protocol", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
TRACES_PROTOCOL = _signal_first("traces_protocol", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")


# -- the table ----------------------------------------------------------------------------------

DEFAULT_HEALTH_PATHS = (
    "/health", "/healthz", "/livez", "/readyz", "/ready",
    "/api/health", "/api/v1/health",
)
MIN_EXPORT_INTERVAL_MS = 500
"""Floor of ``OTEL_METRIC_EXPORT_INTERVAL``: a 1 ms interval cost 38% of a core at idle."""
EXPORTERS = ("prometheus", "otlp", "none")
TRACE_EXPORTERS = ("otlp", "console", "none")
OTLP_PROTOCOLS = ("http/protobuf", "grpc")
TRACE_SAMPLERS = ("parentbased_traceidratio", "parentbased_always_on", "parentbased_always_off",
                  "traceidratio", "always_on", "always_off")
_PROTOCOL = OneOf(OTLP_PROTOCOLS, exact=True)
_SDK = "SDK default"

VARIABLES: tuple[Variable, ...] = (
    # The resource is read by the SDK's detector; an unencodable one would fail every OTLP export.
    Variable("OTEL_SERVICE_NAME", (), Utf8Text(), None,
             "the `service.name` of every series (the `job` label through the collector)", shown_default=f"`{SERVICE_NAME_DEFAULT}`"),
    Variable("OTEL_RESOURCE_ATTRIBUTES", (), Utf8Text(), None,
             "`key=value,...` resource attributes; a `service.instance.id` becomes `<id>-<pid>`, one per process"),
    Variable("SUBLARR_METRICS_ENABLED", ("enabled",), Flag(), True,
             "`false` keeps the app serving and makes the metrics path answer 503 with the reason"),
    Variable("SUBLARR_METRICS_PATH", ("path",), RoutePath(), "/metrics",
             "where the exposition is served; naming an existing route (Sublarr's `/api/v1/metrics`) makes "
             "telemetry serve it behind the app's own hooks ([adopting-in-sublarr.md](adopting-in-sublarr.md))",
             rules=(METRICS_PATH,)),
    Variable("SUBLARR_METRICS_EXCLUDE_PATHS", ("exclude_paths",), PathPatterns(), DEFAULT_HEALTH_PATHS,
             "paths not measured; `none` measures all"),
    Variable("SUBLARR_METRICS_EXCLUDE_STATIC", ("exclude_static",), Flag(), True,
             "do not measure the app's static files"),
    Variable("OTEL_METRICS_EXPORTER", ("exporters",), Exporters(EXPORTERS), ("prometheus",),
             "`prometheus` serves the metrics path, `otlp` pushes, both together, or `none`"),
    Variable("SUBLARR_METRICS_PROVIDERS", ("providers",), Names(), (),
             "provider names the `provider` label accepts up front (more are learned, at most 64)"),
    Variable("SUBLARR_REDIS_URL", ("redis_url",), RedisUrl(), None,
             "Redis to probe for `sublarr_redis_*` (Sublarr's own variable)"),
    Variable("SUBLARR_METRICS_DISK_PATHS", ("disk_paths",), Names("paths or label=path pairs"), (),
             "paths (or `label=path`) for `sublarr_disk_usage_percent`",
             shown_default="`/config`, `/media` when present"),
    Variable("SUBLARR_METRICS_SOURCE_TIMEOUT", ("source_timeout",), Decimal(0.05, 5.0, "seconds"), 1.0,
             "how long a scrape waits for one state source"),
    Variable("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", ("otlp_protocol",), _PROTOCOL, "http/protobuf",
             "the OTLP protocol of metrics; `grpc` needs `opentelemetry-exporter-otlp-proto-grpc`",
             rules=(METRICS_PROTOCOL,)),
    Variable("OTEL_EXPORTER_OTLP_PROTOCOL", ("otlp_protocol", "traces_protocol"), _PROTOCOL, "http/protobuf",
             "the OTLP protocol of metrics and spans when their own variable is unset",
             rules=(METRICS_PROTOCOL, TRACES_PROTOCOL)),
    Variable("OTEL_EXPORTER_OTLP_ENDPOINT", (), None, None,
             "where OTLP goes (`_METRICS_`/`_TRACES_ENDPOINT` per signal)", shown_default=_SDK),
    Variable("OTEL_EXPORTER_OTLP_HEADERS", (), None, None,
             "headers of every OTLP request (`_METRICS_`/`_TRACES_HEADERS` per signal)", shown_default=_SDK),
    Variable("OTEL_EXPORTER_OTLP_TIMEOUT", (), None, None,
             "time limit of an OTLP export (`_METRICS_`/`_TRACES_TIMEOUT` per signal)", shown_default=_SDK),
    Variable("OTEL_METRIC_EXPORT_INTERVAL", ("export_interval_ms",),
             Decimal(MIN_EXPORT_INTERVAL_MS, 3_600_000, "milliseconds"), None,
             f"milliseconds between OTLP pushes, {MIN_EXPORT_INTERVAL_MS} at least", shown_default="`60000`"),
    Variable("SUBLARR_METRICS_JOB_FUNCTIONS", ("job_functions",), Names(), (),
             "job function names the `function` label of the job families accepts; others become `other`"),
    Variable("SUBLARR_METRICS_MAX_SERIES", ("max_series",), WholeNumber(10, 1_000_000), 1000,
             "label sets per family; past it new sets fold into one `_overflow` series, counted in "
             "`sublarr_telemetry_series_overflow_total` and logged once"),
    Variable("SUBLARR_METRICS_AUTH", ("auth",), OneOf(AUTH_MODES), "none",
             "protection of the metrics path (401 with `WWW-Authenticate` otherwise)", rules=(AUTH,)),
    Variable("SUBLARR_METRICS_TOKEN", ("token",), Text(TOKEN_ACCEPTED), None,
             "the bearer token", rules=(AUTH,)),
    Variable("SUBLARR_METRICS_TOKEN_FILE", ("token",), SecretFile(), None,
             "a file holding the token (Docker secrets), trimmed as Prometheus trims `credentials_file`",
             rules=(AUTH,)),
    Variable("SUBLARR_METRICS_USERNAME", ("username",), Text(USERNAME_ACCEPTED), "prometheus",
             "the basic-auth user name", rules=(AUTH,)),
    Variable("SUBLARR_METRICS_PASSWORD", ("password",), Text(PASSWORD_ACCEPTED), None,
             "the basic-auth password", rules=(AUTH,)),
    Variable("SUBLARR_METRICS_PASSWORD_FILE", ("password",), SecretFile(), None,
             "a file holding the password, read like the token file", rules=(AUTH,)),
    Variable("SUBLARR_METRICS_LISTEN", ("listen",), Listen(), None,
             "serve metrics on their own port instead of the app's (single-process servers, RQ workers); "
             "`:PORT` alone listens on every interface (`0.0.0.0`)"),
    Variable("OTEL_TRACES_EXPORTER", ("traces_exporters",), Exporters(TRACE_EXPORTERS), (),
             "`otlp` (or `console`) turns tracing on: request, query and Redis spans and exemplars "
             "([tracing.md](tracing.md)); needs `sublarr-telemetry[tracing]`", shown_default="`none`"),
    Variable("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", ("traces_protocol",), _PROTOCOL, "http/protobuf",
             "the OTLP protocol of spans", rules=(TRACES_PROTOCOL,)),
    Variable("OTEL_TRACES_SAMPLER", ("traces_sampler",), OneOf(TRACE_SAMPLERS), "parentbased_traceidratio",
             "which traces are kept", rules=(SAMPLER,)),
    Variable("OTEL_TRACES_SAMPLER_ARG", ("traces_sampler_ratio",), Ratio(), 1.0,
             "the share of new traces the ratio samplers keep", rules=(SAMPLER,)),
    Variable("OTEL_SEMCONV_STABILITY_OPT_IN", (), None, None,
             "telemetry adds `http` (stable HTTP span attributes) unless it names `http` or `http/dup`",
             shown_default="`http`"),
    Variable("OTEL_PYTHON_FLASK_EXCLUDED_URLS", (), None, None,
             "URLs without spans, besides the metrics path, excluded paths and static files "
             "(else `OTEL_PYTHON_EXCLUDED_URLS`)", shown_default="–"),
    Variable("OTEL_PYTHON_EXCLUDED_URLS", (), None, None,
             "as `OTEL_PYTHON_FLASK_EXCLUDED_URLS`, for every instrumentation", shown_default="–"),
    Variable("SUBLARR_METRICS_KEEP_SEMCONV", ("keep_semconv_metrics",), Flag(), False,
             "`true` keeps the instrumentations' own semantic-convention metrics "
             "(`http.server.request.duration`, ...) beside the `sublarr_*` series"),
    Variable("SUBLARR_METRICS_SQL_COMMENTER", ("sql_commenter",), Flag(), False,
             "`true` appends sqlcommenter comments (with the `traceparent`) to the app's SQL"),
    Variable("SUBLARR_METRICS_NATIVE_HISTOGRAMS", ("native_histograms",), OneOf(("off", "also", "only")), "off",
             "OTLP only: `also` sends the request, query and job durations as exponential (native) histograms "
             "too, `only` instead of the classic buckets; for Prometheus 3's OTLP receiver, not through the "
             "collector ([monitoring/README.md](../monitoring/README.md))"),
    Variable("SUBLARR_METRICS_ROLE", ("role",), OneOf(("auto", "web", "worker")), "auto",
             "only the `web` role reports shared state (queues, database, Redis); `auto` is `worker` in a "
             "process running telemetry's RQ worker"),
)

BY_NAME: dict[str, Variable] = {variable.name: variable for variable in VARIABLES}


def _field_defaults(variables: tuple[Variable, ...]) -> dict[str, object]:
    """Each field's default, from the variables that fill it (which must agree)."""
    defaults: dict[str, object] = {}
    for variable in variables:
        for name in variable.fields:
            if defaults.setdefault(name, variable.default) != variable.default:
                raise AssertionError(f"{variable.name}: default {variable.default!r} for {name!r}, "
                                     f"another variable says {defaults[name]!r}")
    return defaults


FIELD_DEFAULTS = _field_defaults(VARIABLES)


def _sources(variables: tuple[Variable, ...]) -> dict[str, Variable | Rule]:
    """Each field's one source: the rule that decides it, else the one variable that fills it."""
    sources: dict[str, Variable | Rule] = {}
    for variable in variables:
        claims = [(name, next((r for r in variable.rules if name in r.fields), variable)) for name in variable.fields]
        claims += [(name, rule) for rule in variable.rules for name in rule.fields]
        for name, source in claims:
            if sources.setdefault(name, source) is not source:
                raise AssertionError(f"{variable.name}: the field {name!r} has two sources")
    return sources


SOURCES = _sources(VARIABLES)


def read_fields(env: Mapping[str, str], order: Iterable[str]) -> dict[str, object]:
    """The fields the environment gives, decided in ``order``: the first bad variable stops it.

    Variables that fill no field (the resource) are checked first.
    """
    read, values = Reader(env), {}
    for variable in VARIABLES:
        if variable.parse is not None and not variable.fields:
            read.read(variable.name)
    for name in order:
        if name not in values:
            source = SOURCES[name]
            if isinstance(source, Rule):
                values.update(source.decide(read))
            else:
                values.update(dict.fromkeys(source.fields, read.read(source.name)))
    return values


__all__ = [
    "AUTH_MODES", "BY_NAME", "DEFAULT_HEALTH_PATHS", "FIELD_DEFAULTS", "MIN_EXPORT_INTERVAL_MS", "Reader",
    "Rule", "SOURCES", "SettingsError", "VARIABLES", "Variable", "check_auth", "read_fields",
]
