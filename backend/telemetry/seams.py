"""Domain events from Sublarr's stable seams, without editing Sublarr (opt-in).

Sublarr never calls its own ``record_*`` helpers, so after a drop-in the
translation and provider families stay empty. Like OpenTelemetry's contrib
instrumentations do for libraries, :class:`SublarrSeams` wraps public methods
that already exist:

- ``providers.base.SubtitleProvider.search`` and ``.download`` on the base
  class and on every subclass loaded at ``instrument()`` time (providers
  override them): ``sublarr_provider_search_total{provider, status}`` with
  ``success``, ``no_results``, ``timeout`` (a ``TimeoutError`` or an
  exception named ``*Timeout*``) or ``failed``; and
  ``sublarr_provider_download_total{provider, format}``.
- ``translator.core.translate_file``: ``sublarr_translation_total`` and
  ``..._duration_seconds``, ``success`` when it returns, ``failed`` when it
  raises; the format is the file's extension.

Each seam is wrapped only when its module is already imported and the
attribute is a plain function; otherwise it is skipped with one log line and
:attr:`SublarrSeams.active` says what was wrapped. What a seam cannot tell
faithfully stays with call sites: a search the manager gives up on by its
own timeout never returns from the provider's ``search`` (no event here), a
``circuit_open`` skip never reaches the provider, and ``skipped``
translations are decided before ``translate_file`` runs.
"""
from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from . import events

_log = logging.getLogger(__name__)
_WRAPPED = "__sublarr_telemetry_wrapped__"
PROVIDER_BASE = ("providers.base", "SubtitleProvider")
TRANSLATE_FILE = ("translator.core", "translate_file")


class SublarrSeams:
    """Idempotent ``instrument()`` / ``uninstrument()`` of Sublarr's seams."""

    def __init__(self, modules: dict[str, Any] | None = None):
        self._modules = sys.modules if modules is None else modules
        self._restore: list[tuple[Any, str, Any]] = []
        self._busy = threading.local()  # a subclass calling super().search() counts once
        self.active: list[str] = []

    def instrument(self) -> "SublarrSeams":
        if self._restore:
            return self
        self._wrap_providers()
        self._wrap_translate_file()
        if not self.active:
            _log.info("sublarr telemetry: no Sublarr seam found; provider and translation events "
                      "come only from call sites")
        return self

    def uninstrument(self) -> None:
        for owner, name, original in reversed(self._restore):
            setattr(owner, name, original)
        self._restore.clear()
        self.active.clear()

    # providers ---------------------------------------------------------------
    def _wrap_providers(self) -> None:
        module_name, class_name = PROVIDER_BASE
        base = getattr(self._modules.get(module_name), class_name, None)
        if not isinstance(base, type):
            _log.info("sublarr telemetry: seam %s.%s not loaded; not wrapped", module_name, class_name)
            return
        for cls in [base, *_subclasses(base)]:
            for method, wrap in (("search", self._search), ("download", self._download)):
                original = cls.__dict__.get(method)
                if _plain_function(original):
                    self._replace(cls, method, wrap(original), f"{cls.__module__}.{cls.__qualname__}.{method}")

    def _search(self, original: Callable) -> Callable:
        @functools.wraps(original)
        def search(provider, *args, **kwargs):
            if self._nested():
                return original(provider, *args, **kwargs)
            self._busy.depth = 1
            try:
                results = original(provider, *args, **kwargs)
            except Exception as exc:
                events.provider_searched(_provider_name(provider), _failure_status(exc))
                raise
            finally:
                self._busy.depth = 0
            events.provider_searched(_provider_name(provider), "success" if results else "no_results")
            return results
        return search

    def _download(self, original: Callable) -> Callable:
        @functools.wraps(original)
        def download(provider, *args, **kwargs):
            # The arguments pass through as given: a subclass may name its parameter
            # otherwise than ``result``, and a caller may pass it by that name.
            if self._nested():
                return original(provider, *args, **kwargs)
            self._busy.depth = 1
            try:
                content = original(provider, *args, **kwargs)
            finally:
                self._busy.depth = 0
            result = args[0] if args else next(iter(kwargs.values()), None)
            events.provider_downloaded(_provider_name(provider), _format_of(result))
            return content
        return download

    def _nested(self) -> bool:
        return getattr(self._busy, "depth", 0) > 0

    # translation -------------------------------------------------------------
    def _wrap_translate_file(self) -> None:
        module_name, function_name = TRANSLATE_FILE
        module = self._modules.get(module_name)
        original = getattr(module, function_name, None)
        if not _plain_function(original):
            _log.info("sublarr telemetry: seam %s.%s not loaded; not wrapped", module_name, function_name)
            return

        @functools.wraps(original)
        def translate_file(*args, **kwargs):
            path = args[0] if args else kwargs.get("file_path", kwargs.get("path"))
            started = time.perf_counter()
            try:
                result = original(*args, **kwargs)
            except Exception:
                events.translation_finished("failed", _extension(path), time.perf_counter() - started)
                raise
            events.translation_finished("success", _extension(path), time.perf_counter() - started)
            return result
        self._replace(module, function_name, translate_file, f"{module_name}.{function_name}")

    def _replace(self, owner: Any, name: str, wrapper: Callable, label: str) -> None:
        original = getattr(owner, name) if not isinstance(owner, type) else owner.__dict__[name]
        setattr(wrapper, _WRAPPED, True)
        setattr(owner, name, wrapper)
        self._restore.append((owner, name, original))
        self.active.append(label)


def _subclasses(cls: type) -> list[type]:
    found, stack = [], list(cls.__subclasses__())
    while stack:
        sub = stack.pop()
        if sub not in found:
            found.append(sub)
            stack.extend(sub.__subclasses__())
    return found


def _plain_function(value: Any) -> bool:
    return callable(value) and not isinstance(value, (staticmethod, classmethod, type)) \
        and not getattr(value, _WRAPPED, False)


def _provider_name(provider: Any) -> str:
    return str(getattr(provider, "name", None) or type(provider).__name__.lower())


def _failure_status(exc: BaseException) -> str:
    return "timeout" if isinstance(exc, TimeoutError) or "timeout" in type(exc).__name__.lower() else "failed"


def _format_of(result: Any) -> str:
    for key in ("format", "fmt"):
        value = result.get(key) if isinstance(result, dict) else getattr(result, key, None)
        if isinstance(value, str) and value:
            return value.lower()
    return "other"


def _extension(path: Any) -> str:
    if not isinstance(path, (str, os.PathLike)):
        return "other"
    return os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "other"
