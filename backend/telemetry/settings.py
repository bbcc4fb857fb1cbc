"""Settings read from the environment and validated once, at start-up.

This module's own switches use ``SUBLARR_METRICS_*``; the service identity
uses the standard ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` (read by
the SDK's resource detector) and the exporter choice ``OTEL_METRICS_EXPORTER``;
tracing (off by default) the standard ``OTEL_TRACES_EXPORTER`` and
``OTEL_TRACES_SAMPLER``/``OTEL_TRACES_SAMPLER_ARG``.
An invalid value raises :class:`SettingsError` naming the variable and what it
accepts: a typo in a monitoring switch should stop the start, not silently
leave the app unobserved.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

_log = logging.getLogger(__name__)

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")

DEFAULT_HEALTH_PATHS = (
    "/health", "/healthz", "/livez", "/readyz", "/ready",
    "/api/health", "/api/v1/health",
)
RESOURCE_VARIABLES = ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES")
EXPORTERS = ("prometheus", "otlp", "none")
OTLP_PROTOCOLS = ("http/protobuf", "grpc")
TRACE_EXPORTERS = ("otlp", "console", "none")
NATIVE_HISTOGRAM_MODES = ("off", "also", "only")
ROLES = ("auto", "web", "worker")
TRACE_SAMPLERS = ("parentbased_traceidratio", "parentbased_always_on", "parentbased_always_off",
                  "traceidratio", "always_on", "always_off")


class SettingsError(ValueError):
    """An environment variable holds a value this module cannot use."""

    def __init__(self, variable: str, value: str, accepted: str):
        self.variable = variable
        self.value = value
        self.accepted = accepted
        super().__init__(f"{variable}={value!r} is invalid: accepted values are {accepted}")


@dataclass(frozen=True)
class Settings:
    """What the module does, decided before anything is instrumented."""

    enabled: bool = True
    path: str = "/metrics"
    exclude_paths: tuple[str, ...] = DEFAULT_HEALTH_PATHS
    exclude_static: bool = True
    exporters: tuple[str, ...] = ("prometheus",)
    providers: tuple[str, ...] = ()
    redis_url: str | None = None
    disk_paths: tuple[str, ...] = ()
    source_timeout: float = 1.0
    otlp_protocol: str = "http/protobuf"
    export_interval_ms: float | None = None
    job_functions: tuple[str, ...] = ()
    max_series: int = 1000
    auth: str = "none"
    token: str | None = field(default=None, repr=False)
    username: str = "prometheus"
    password: str | None = field(default=None, repr=False)
    listen: tuple[str, int] | None = None
    # Tracing (telemetry.tracing): off unless OTEL_TRACES_EXPORTER names an exporter.
    traces_exporters: tuple[str, ...] = ()
    traces_protocol: str = "http/protobuf"
    traces_sampler: str = "parentbased_traceidratio"
    traces_sampler_ratio: float = 1.0
    keep_semconv_metrics: bool = False
    sql_commenter: bool = False
    # OTLP only: exponential (native) duration histograms besides or instead of the classic ones.
    native_histograms: str = "off"
    # An explicit path is always served, and may name one of the app's own routes
    # (telemetry then serves it). From the environment: SUBLARR_METRICS_PATH is set;
    # unset, an app with its own metrics route keeps it as the only one.
    path_explicit: bool = True
    # Which process reports shared state (queue, database, Redis): "auto" is
    # "worker" in a process that runs a telemetry RQ worker, else "web".
    role: str = "auto"

    def __post_init__(self):
        """Settings built in code obey the rule the environment does: a credential is never ignored."""
        if self.auth not in AUTH_MODES:
            raise SettingsError("SUBLARR_METRICS_AUTH", self.auth, ", ".join(AUTH_MODES))
        if self.auth == "none" and (self.token or self.password):
            raise SettingsError("SUBLARR_METRICS_AUTH", "none", "bearer or basic when a token or password is set")
        if self.auth == "bearer" and not self.token:
            raise SettingsError("SUBLARR_METRICS_TOKEN", "", "a token when SUBLARR_METRICS_AUTH=bearer")
        if self.auth == "basic" and not self.password:
            raise SettingsError("SUBLARR_METRICS_PASSWORD", "", "a password when SUBLARR_METRICS_AUTH=basic")

    @property
    def tracing(self) -> bool:
        return self.enabled and bool(self.traces_exporters)

    @property
    def serve_metrics(self) -> bool:
        return self.enabled and "prometheus" in self.exporters

    def with_overrides(self, **changes) -> "Settings":
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        for name in RESOURCE_VARIABLES:  # read by the SDK; an unencodable one would fail every OTLP export
            value = env.get(name)
            if value is not None and not _encodable(value):
                raise SettingsError(name, value, "UTF-8 text (the environment holds bytes that are not)")
        return cls(
            enabled=_bool(env, "SUBLARR_METRICS_ENABLED", True),
            path=_path(env, "SUBLARR_METRICS_PATH", "/metrics"),
            exclude_paths=_path_list(env, "SUBLARR_METRICS_EXCLUDE_PATHS", DEFAULT_HEALTH_PATHS),
            exclude_static=_bool(env, "SUBLARR_METRICS_EXCLUDE_STATIC", True),
            exporters=_exporters(env, "OTEL_METRICS_EXPORTER", ("prometheus",)),
            providers=_name_list(env, "SUBLARR_METRICS_PROVIDERS"),
            redis_url=_redis_url(env, "SUBLARR_REDIS_URL"),
            disk_paths=_name_list(env, "SUBLARR_METRICS_DISK_PATHS"),
            source_timeout=_seconds(env, "SUBLARR_METRICS_SOURCE_TIMEOUT", 1.0, 0.05, 5.0),
            otlp_protocol=_otlp_protocol(env),
            export_interval_ms=_seconds(env, "OTEL_METRIC_EXPORT_INTERVAL", None,
                                        MIN_EXPORT_INTERVAL_MS, 3_600_000),
            job_functions=_name_list(env, "SUBLARR_METRICS_JOB_FUNCTIONS"),
            max_series=_integer(env, "SUBLARR_METRICS_MAX_SERIES", 1000, 10, 1_000_000),
            **_auth(env),
            listen=_listen(env, "SUBLARR_METRICS_LISTEN"),
            traces_exporters=_exporters(env, "OTEL_TRACES_EXPORTER", (), TRACE_EXPORTERS),
            traces_protocol=_otlp_protocol(env, "TRACES"),
            **_sampler(env),
            keep_semconv_metrics=_bool(env, "SUBLARR_METRICS_KEEP_SEMCONV", False),
            sql_commenter=_bool(env, "SUBLARR_METRICS_SQL_COMMENTER", False),
            native_histograms=_choice(env, "SUBLARR_METRICS_NATIVE_HISTOGRAMS", NATIVE_HISTOGRAM_MODES, "off"),
            path_explicit=_raw(env, "SUBLARR_METRICS_PATH") is not None,
            role=_choice(env, "SUBLARR_METRICS_ROLE", ROLES, "auto"),
        )

    @property
    def push(self) -> bool:
        return self.enabled and "otlp" in self.exporters


def _raw(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = _raw(env, name)
    if value is None:
        return default
    word = value.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise SettingsError(name, value, ", ".join(TRUE_WORDS + FALSE_WORDS))


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = _raw(env, name)
    if value is None:
        return default
    if value.lower() not in choices:
        raise SettingsError(name, value, ", ".join(choices))
    return value.lower()


MIN_EXPORT_INTERVAL_MS = 500
"""Floor of ``OTEL_METRIC_EXPORT_INTERVAL``: a 1 ms interval cost 38% of a core at idle."""

_DECIMAL = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+", re.ASCII)
_DIGITS = re.compile(r"[0-9]+", re.ASCII)


def _seconds(env: Mapping[str, str], name: str, default, low: float, high: float):
    """A number within [low, high] (seconds, or milliseconds for OTEL_* intervals).

    Plain ASCII decimals only: ``float()`` would also take ``nan``, ``1e3``,
    ``1_0`` and non-ASCII digits, which no operator means to write here.
    """
    value = _raw(env, name)
    if value is None:
        return default
    number = float(value) if _DECIMAL.fullmatch(value) else float("nan")
    if not low <= number <= high:
        unit = "milliseconds" if name.startswith("OTEL_") else "seconds"
        raise SettingsError(name, value, f"a number of {unit} from {low:g} to {high:g}")
    return number


def _integer(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    value = _raw(env, name)
    if value is None:
        return default
    # str.isdigit() also accepts digits int() refuses (superscripts) or reads as other numbers
    if not _DIGITS.fullmatch(value) or not low <= int(value) <= high:
        raise SettingsError(name, value, f"a whole number from {low} to {high}")
    return int(value)


AUTH_MODES = ("none", "bearer", "basic")


_TOKEN = re.compile(r"[\x21-\x7e]+", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class _Hidden(str):
    """A secret in an error message: shown as its length, never its text."""

    def __repr__(self) -> str:
        return f"<{len(self)} characters, not shown>"


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """``NAME`` or the contents of the file named by ``NAME_FILE`` (never both).

    Read as Prometheus reads its ``credentials_file``/``password_file``:
    leading and trailing whitespace (a final newline, an editor's trailing
    spaces) is not part of the secret. The file must be UTF-8 text. Errors
    name the variable and, for files, the path; never the secret.
    """
    direct, path = _raw(env, name), _raw(env, name + "_FILE")
    if direct is not None and path is not None:
        raise SettingsError(name + "_FILE", path, f"unset when {name} is set (use one of them)")
    if path is None:
        return direct
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise SettingsError(name + "_FILE", path, f"a readable file ({exc.strerror})") from None
    try:
        secret = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SettingsError(name + "_FILE", path, "a file holding UTF-8 text (this one is not)") from None
    if not secret:
        raise SettingsError(name + "_FILE", path, "a file holding a non-empty secret")
    return secret


def _check_secret(name: str, secret: str | None, token: bool) -> None:
    """Tokens travel as visible ASCII; basic-auth parts as UTF-8 without control characters."""
    if secret is None:
        return
    if token and not _TOKEN.fullmatch(secret):
        raise SettingsError(name, _Hidden(secret), "a token of visible ASCII characters (no spaces or "
                            "control characters), as an HTTP Authorization header carries it")
    if not token and (_CONTROL.search(secret) or not _encodable(secret)):
        raise SettingsError(name, _Hidden(secret), "UTF-8 text without control characters")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: undecodable bytes in the environment
        return False
    return True


def _auth(env: Mapping[str, str]) -> dict:
    """The scrape protection; a credential is never ignored.

    With ``SUBLARR_METRICS_AUTH`` unset, a token alone means bearer and a
    password alone means basic (logged); ``none`` beside a credential, or both
    kinds without a mode, is refused: metrics must not be served openly by
    someone who set a secret.
    """
    token, password = _secret(env, "SUBLARR_METRICS_TOKEN"), _secret(env, "SUBLARR_METRICS_PASSWORD")
    _check_secret("SUBLARR_METRICS_TOKEN", token, token=True)
    _check_secret("SUBLARR_METRICS_PASSWORD", password, token=False)
    given = _raw(env, "SUBLARR_METRICS_AUTH")
    mode = (given or "none").lower()
    if mode not in AUTH_MODES:
        raise SettingsError("SUBLARR_METRICS_AUTH", env["SUBLARR_METRICS_AUTH"], ", ".join(AUTH_MODES))
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
    username = _raw(env, "SUBLARR_METRICS_USERNAME") or "prometheus"
    if mode == "bearer" and not token:
        raise SettingsError("SUBLARR_METRICS_TOKEN", "", "a token (or SUBLARR_METRICS_TOKEN_FILE) "
                            "when SUBLARR_METRICS_AUTH=bearer")
    if mode == "basic" and not password:
        raise SettingsError("SUBLARR_METRICS_PASSWORD", "", "a password (or SUBLARR_METRICS_PASSWORD_FILE) "
                            "when SUBLARR_METRICS_AUTH=basic")
    if mode == "basic" and (":" in username or _CONTROL.search(username) or not _encodable(username)):
        raise SettingsError("SUBLARR_METRICS_USERNAME", username,
                            "a user name of UTF-8 text without ':' or control characters")
    return {"auth": mode, "token": token, "username": username, "password": password}


def _listen(env: Mapping[str, str], name: str) -> tuple[str, int] | None:
    value = _raw(env, name)
    if value is None:
        return None
    host, _, port = value.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    if (not _DIGITS.fullmatch(port) or not 0 <= int(port) < 65536 or not _encodable(host)
            or any(c.isspace() or c in "/[]@" for c in host)):
        raise SettingsError(name, value, LISTEN_ACCEPTED)
    return host, int(port)


LISTEN_ACCEPTED = "HOST:PORT or :PORT with a port from 0 (any free one) to 65535"


REDIS_SCHEMES = ("redis", "rediss", "unix")


def _redis_url(env: Mapping[str, str], name: str) -> str | None:
    """A URL redis-py's ``from_url`` takes: checked here, not at the first scrape."""
    value = _raw(env, name)
    if value is None:
        return None
    from urllib.parse import urlsplit

    accepted = "a redis://, rediss:// or unix:// URL (redis://[:password@]host[:port][/db])"
    try:
        url = urlsplit(value)
        url.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise SettingsError(name, value, accepted) from None
    if url.scheme not in REDIS_SCHEMES or not (url.hostname or url.path) or not _encodable(value):
        raise SettingsError(name, value, accepted)
    path = url.path.lstrip("/")
    if url.scheme != "unix" and path and not _DIGITS.fullmatch(path):
        raise SettingsError(name, value, accepted + " with a database number")
    return value


def _otlp_protocol(env: Mapping[str, str], signal: str = "METRICS") -> str:
    for name in (f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        value = _raw(env, name)
        if value is not None:
            if value not in OTLP_PROTOCOLS:
                raise SettingsError(name, value, ", ".join(OTLP_PROTOCOLS))
            return value
    return "http/protobuf"


def _check_path(name: str, value: str, allow_prefix: bool = False) -> str:
    body = value[:-1] if allow_prefix and value.endswith("*") else value
    if (not body.startswith("/") or any(c.isspace() for c in body) or "?" in body or "#" in body
            or not _encodable(body)):
        accepted = "a URL path starting with '/'"
        if allow_prefix:
            accepted = "comma-separated URL paths starting with '/', a trailing '*' marks a prefix"
        raise SettingsError(name, value, accepted)
    return value


_ROUTE_PATH = re.compile(r"(/[A-Za-z0-9._~!$&'()*+,;=:@-]+)+/?|/", re.ASCII)
ROUTE_PATH_ACCEPTED = ("a URL path starting with '/' of letters, digits and -._~!$&'()*+,;=:@ "
                       "between single slashes (no '<converter>', '%', '?', '#', '//', '.' or '..' segment)")


def _path(env: Mapping[str, str], name: str, default: str) -> str:
    """The metrics path: literal, canonical and ASCII, since it becomes a route.

    ``<...>`` would be a Flask converter (every unknown URL then answered
    500), and a doubled slash or dot segment is never what a client sends.
    """
    value = _raw(env, name)
    if value is None:
        return default
    segments = value.split("/")
    if not _ROUTE_PATH.fullmatch(value) or "." in segments or ".." in segments:
        raise SettingsError(name, value, ROUTE_PATH_ACCEPTED)
    return value


def _path_list(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = env.get(name)
    if value is None:
        return default
    if value.strip().lower() == "none":
        return ()
    items = [item.strip() for item in value.split(",") if item.strip()]
    for item in items:
        try:
            _check_path(name, item, allow_prefix=True)
        except SettingsError as exc:
            raise SettingsError(name, value, f"{exc.accepted} (the entry {item!r} is not)") from None
    return tuple(items)


def _name_list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    value = _raw(env, name)
    if value is None:
        return ()
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _exporters(env: Mapping[str, str], name: str, default: tuple[str, ...],
               accepted: tuple[str, ...] = EXPORTERS) -> tuple[str, ...]:
    value = _raw(env, name)
    if value is None:
        return default
    items = tuple(dict.fromkeys(item.strip().lower() for item in value.split(",") if item.strip()))
    if not items or any(item not in accepted for item in items):
        raise SettingsError(name, value, "a comma-separated list of " + ", ".join(accepted))
    if "none" in items and len(items) > 1:
        raise SettingsError(name, value, "'none' alone, or a comma-separated list of "
                            + ", ".join(e for e in accepted if e != "none"))
    return () if items == ("none",) else items


def _sampler(env: Mapping[str, str]) -> dict:
    """OTEL_TRACES_SAMPLER (default parentbased_traceidratio) and, for the ratio
    samplers, OTEL_TRACES_SAMPLER_ARG (default 1.0); the argument of other
    samplers is ignored, as the specification says."""
    name = (_raw(env, "OTEL_TRACES_SAMPLER") or "parentbased_traceidratio").lower()
    if name not in TRACE_SAMPLERS:
        raise SettingsError("OTEL_TRACES_SAMPLER", env["OTEL_TRACES_SAMPLER"], ", ".join(TRACE_SAMPLERS))
    ratio, value = 1.0, _raw(env, "OTEL_TRACES_SAMPLER_ARG")
    if name.endswith("traceidratio") and value is not None:
        try:
            ratio = float(value)
        except ValueError:
            ratio = float("nan")
        if not 0.0 <= ratio <= 1.0:
            raise SettingsError("OTEL_TRACES_SAMPLER_ARG", value, f"a sampling ratio from 0 to 1 for {name}")
    return {"traces_sampler": name, "traces_sampler_ratio": ratio}
