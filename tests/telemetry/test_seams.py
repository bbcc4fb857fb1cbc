"""Sublarr's seams wrapped without editing Sublarr: events reach the families once."""
import types

import pytest

from flask import Flask

from harness.support import sample_value, scrape
from telemetry import Settings, Telemetry
from telemetry.seams import SublarrSeams


class ProviderTimeout(Exception):
    pass


def sublarr_modules():
    """providers.base / translator.core shaped like Sublarr's, plus two providers."""
    base = types.ModuleType("providers.base")

    class SubtitleProvider:
        name = "base"

        def search(self, query):
            return []

        def download(self, result):
            return b"1\n00:00:01,000 --> 00:00:02,000\nhi\n"
    base.SubtitleProvider = SubtitleProvider

    class OpenSubtitles(SubtitleProvider):
        name = "opensubtitles"

        def search(self, query):
            if query == "slow":
                raise ProviderTimeout("took too long")
            if query == "broken":
                raise RuntimeError("HTTP 500")
            return super().search(query) + ([{"format": "srt"}] if query else [])

    class Podnapisi(SubtitleProvider):
        name = "podnapisi"

    core = types.ModuleType("translator.core")

    def translate_file(file_path, target_language="de"):
        if target_language == "xx":
            raise ValueError("unsupported language")
        return {"path": file_path}
    core.translate_file = translate_file
    return {"providers.base": base, "translator.core": core}, OpenSubtitles, Podnapisi


@pytest.fixture
def app():
    app = Flask("seams")
    telemetry = Telemetry(settings=Settings()).init_app(app)
    yield app
    telemetry.shutdown()


def test_seams_report_provider_and_translation_events_once(app):
    modules, OpenSubtitles, Podnapisi = sublarr_modules()
    seams = SublarrSeams(modules).instrument()
    assert sorted(label.rsplit("<locals>.", 1)[-1] for label in seams.active) == sorted([
        "SubtitleProvider.search", "SubtitleProvider.download", "OpenSubtitles.search",
        "translator.core.translate_file"])
    os_, pod = OpenSubtitles(), Podnapisi()
    assert os_.search("show") == [{"format": "srt"}]  # calls super().search(): still one event
    os_.search("")
    for query in ("slow", "broken"):
        with pytest.raises(Exception):
            os_.search(query)
    pod.search("show")
    pod.download({"format": "ASS"})
    translate = modules["translator.core"].translate_file
    translate("/media/show/ep1.en.ass")
    with pytest.raises(ValueError):
        translate("/media/show/ep1.en.srt", "xx")

    text = scrape(app.test_client())
    search = lambda provider, status: sample_value(text, "sublarr_provider_search_total",  # noqa: E731
                                                   {"provider": provider, "status": status})
    assert (search("opensubtitles", "success"), search("opensubtitles", "no_results"),
            search("opensubtitles", "timeout"), search("opensubtitles", "failed")) == (1, 1, 1, 1)
    assert search("podnapisi", "no_results") == 1
    assert sample_value(text, "sublarr_provider_download_total", {"provider": "podnapisi", "format": "ass"}) == 1
    assert sample_value(text, "sublarr_translation_total", {"status": "success", "format": "ass"}) == 1
    assert sample_value(text, "sublarr_translation_total", {"status": "failed", "format": "srt"}) == 1
    assert sample_value(text, "sublarr_translation_duration_seconds_count") == 2

    seams.instrument()  # idempotent
    seams.uninstrument()
    assert not hasattr(OpenSubtitles.__dict__["search"], "__wrapped__")
    os_.search("show")
    assert sample_value(scrape(app.test_client()), "sublarr_provider_search_total",
                        {"provider": "opensubtitles", "status": "success"}) == 1, "unwrapped: no event"


def test_absent_or_changed_seams_wrap_nothing(app):
    changed = types.ModuleType("translator.core")
    changed.translate_file = None  # renamed in a later Sublarr
    seams = SublarrSeams({"translator.core": changed}).instrument()
    assert seams.active == []
    assert changed.translate_file is None


def test_a_download_whose_parameter_has_another_name_is_called_as_the_caller_wrote_it(app):
    """The wrapper must not change the call: ``download(subtitle=...)`` on a provider naming it so."""
    modules, _, _ = sublarr_modules()
    base = modules["providers.base"].SubtitleProvider

    class Jimaku(base):
        name = "jimaku"

        def download(self, subtitle):
            return subtitle["format"].encode()

    seams = SublarrSeams(modules).instrument()
    try:
        assert Jimaku().download(subtitle={"format": "VTT"}) == b"VTT"
        assert Jimaku().download({"format": "SRT"}) == b"SRT"
    finally:
        seams.uninstrument()
    text = scrape(app.test_client())
    for fmt in ("vtt", "srt"):
        assert sample_value(text, "sublarr_provider_download_total", {"provider": "jimaku", "format": fmt}) == 1
