"""Circuit breaker transitions, simulated providers and the provider manager."""
from __future__ import annotations

import random

import pytest

from refapp import providers as providers_module
from refapp.providers import (
    CircuitBreaker,
    CircuitOpenError,
    Provider,
    ProviderError,
    ProviderManager,
    UnknownProviderError,
)


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def boom():
    raise ProviderError("down")


def trip(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.failure_threshold):
        with pytest.raises(ProviderError):
            breaker.call(boom)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def breaker(clock):
    return CircuitBreaker("subdl", failure_threshold=3, recovery_timeout=30.0, clock=clock)


def test_opens_after_threshold_consecutive_failures(breaker):
    for _ in range(2):
        with pytest.raises(ProviderError):
            breaker.call(boom)
    assert breaker.state == "closed"
    assert breaker.call(lambda: "ok") == "ok"  # a success resets the streak
    assert breaker.failure_count == 0
    trip(breaker)
    assert breaker.state == "open"


def test_open_breaker_rejects_without_calling(breaker):
    trip(breaker)
    called = []
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(lambda: called.append(1))
    assert called == []
    assert info.value.retry_after == pytest.approx(30.0)


def test_reading_state_has_no_side_effects(breaker, clock):
    trip(breaker)
    clock.advance(30.0)
    before = dict(vars(breaker))
    for _ in range(5):
        assert breaker.state == "half_open"
    breaker.retry_after()
    breaker.failure_count
    assert vars(breaker) == before
    # The probe was not consumed by the reads: exactly one call may go through.
    assert breaker.allow() is True
    assert breaker.allow() is False


def test_half_open_probe_success_closes(breaker, clock):
    trip(breaker)
    clock.advance(29.9)
    assert breaker.state == "open"
    clock.advance(0.1)
    assert breaker.call(lambda: "fine") == "fine"
    assert breaker.state == "closed"
    assert breaker.failure_count == 0


def test_half_open_probe_failure_reopens_for_a_full_timeout(breaker, clock):
    trip(breaker)
    clock.advance(30.0)
    with pytest.raises(ProviderError):
        breaker.call(boom)
    assert breaker.state == "open"
    clock.advance(29.0)
    assert breaker.state == "open"
    clock.advance(1.0)
    assert breaker.state == "half_open"


def test_late_failure_does_not_extend_open_window(breaker, clock):
    assert breaker.allow()  # admitted while closed, reports after the trip
    trip(breaker)
    clock.advance(20.0)
    breaker.record_failure()
    clock.advance(10.0)
    assert breaker.state == "half_open"


def test_provider_is_deterministic_with_seeded_rng():
    a = Provider("subdl", latency_scale=0, failure_rate=0.3, rng=random.Random(7))
    b = Provider("subdl", latency_scale=0, failure_rate=0.3, rng=random.Random(7))

    def outcomes(provider):
        out = []
        for i in range(30):
            try:
                out.append(provider.search(f"show {i}"))
            except ProviderError:
                out.append("failed")
        return out

    first, second = outcomes(a), outcomes(b)
    assert first == second
    assert "failed" in first and any(isinstance(r, list) and r for r in first)


def test_provider_download_returns_known_format():
    provider = Provider("subdl", latency_scale=0, failure_rate=0, rng=random.Random(1))
    assert provider.download({"id": "x", "fmt": "vtt"})["fmt"] == "vtt"
    assert provider.download({"id": "x"})["fmt"] in ("ass", "srt", "vtt", "ssa")


def test_provider_sleeps_scaled_latency(monkeypatch):
    sleeps = []
    monkeypatch.setattr(providers_module.time, "sleep", sleeps.append)
    Provider("a", latency_scale=2.0, failure_rate=0, rng=random.Random(1)).search("q")
    Provider("b", latency_scale=0.0, failure_rate=0, rng=random.Random(1)).search("q")
    assert len(sleeps) == 1 and 0.04 <= sleeps[0] <= 0.4


@pytest.fixture
def recorded_events(monkeypatch):
    calls = []
    monkeypatch.setattr(providers_module.events, "provider_searched",
                        lambda **kw: calls.append(("searched", kw)))
    monkeypatch.setattr(providers_module.events, "provider_downloaded",
                        lambda **kw: calls.append(("downloaded", kw)))
    return calls


def test_manager_reports_each_provider_outcome(make_config, recorded_events):
    manager = ProviderManager(make_config(failure_rate=1.0, providers=("a", "b")))
    for _ in range(3):
        assert manager.search("show") == []
    assert manager.breaker_states() == {"a": "open", "b": "open"}
    manager.search("show")

    statuses = [(kw["provider"], kw["status"]) for _, kw in recorded_events]
    assert statuses == [("a", "failed"), ("b", "failed")] * 3 + [("a", "circuit_open"), ("b", "circuit_open")]


def test_manager_search_collects_results_and_reports_success(make_config, recorded_events):
    manager = ProviderManager(make_config(failure_rate=0.0))
    results = [manager.search(f"title {i}") for i in range(5)]
    assert any(results)
    for batch in results:
        assert [r["score"] for r in batch] == sorted((r["score"] for r in batch), reverse=True)
    assert {kw["status"] for _, kw in recorded_events} == {"success"}
    assert len(recorded_events) == 5 * len(manager.providers)


def test_manager_download(make_config, recorded_events):
    manager = ProviderManager(make_config())
    subtitle = manager.download("podnapisi", {"id": "p-1", "fmt": "ass"})
    assert subtitle["fmt"] == "ass"
    assert recorded_events == [("downloaded", {"provider": "podnapisi", "fmt": "ass"})]
    with pytest.raises(UnknownProviderError):
        manager.download("nope", {})


def test_bad_format_does_not_count_against_provider(make_config):
    manager = ProviderManager(make_config())
    for _ in range(5):
        with pytest.raises(ValueError):
            manager.download("subdl", {"fmt": "docx"})
    assert manager._circuit_breakers["subdl"].state == "closed"
    assert manager._circuit_breakers["subdl"].failure_count == 0
