"""Translation and provider families, fed by :mod:`telemetry.events`.

These are domain events the app reports; they are rare compared with requests,
so a direct SDK call per event is cheap enough and keeps them exact.
"""
from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.metrics import Meter

from . import catalog
from .bounds import BoundedValues
from .cardinality import SeriesGuard, standalone_guard


class SubtitleMetrics:
    def __init__(self, meter: Meter, providers: Iterable[str] = (), guards=None):
        translations = catalog.family("sublarr_translation_total")
        duration = catalog.family("sublarr_translation_duration_seconds")
        searches = catalog.family("sublarr_provider_search_total")
        downloads = catalog.family("sublarr_provider_download_total")
        self._translations = _counter(meter, translations)
        self._duration = meter.create_histogram(
            duration.instrument_name, unit=duration.unit, description=duration.description,
            explicit_bucket_boundaries_advisory=list(duration.buckets))
        self._searches = _counter(meter, searches)
        self._downloads = _counter(meter, downloads)
        providers = tuple(providers)
        self.provider = BoundedValues(searches.label("provider"), providers)
        self.translation_status = BoundedValues(translations.label("status"))
        self.search_status = BoundedValues(searches.label("status"))
        self.format = BoundedValues(translations.label("format"))
        self._guards = guards or standalone_guard
        self._guard_translations = self._guards(translations)
        self._guard_searches = self._guards(searches)
        self._guard_downloads = self._guards(downloads)

    def translation_finished(self, status: str, fmt: str, duration: float) -> None:
        self._translations.add(1, _guarded(self._guard_translations, ("status", "format"),
                                           (self.translation_status(status), self.format(fmt))))
        if duration is not None and duration >= 0:
            self._duration.record(float(duration))

    def provider_searched(self, provider: str, status: str) -> None:
        self._searches.add(1, _guarded(self._guard_searches, ("provider", "status"),
                                       (self.provider(provider), self.search_status(status))))

    def provider_downloaded(self, provider: str, fmt: str) -> None:
        self._downloads.add(1, _guarded(self._guard_downloads, ("provider", "format"),
                                        (self.provider(provider), self.format(fmt))))


def _guarded(guard: SeriesGuard, keys: tuple[str, ...], values: tuple[str, ...]) -> dict[str, str]:
    """Attributes for one recording: sanitised, and folded to ``_overflow`` past the family's cap."""
    return dict(zip(keys, guard.admit(values)))


def _counter(meter: Meter, family: catalog.Family):
    return meter.create_counter(family.instrument_name, unit=family.unit, description=family.description)
