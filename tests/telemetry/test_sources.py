"""Source: time-bounded, isolated, logs once per distinct failure."""
import logging
import threading
import time

import pytest

from telemetry.state.sources import Source, constant


def test_a_hung_read_costs_one_budget_then_nothing(caplog):
    release = threading.Event()
    calls = []

    def hang():
        calls.append(1)
        release.wait(10)
        return "late"

    source = Source("slow", hang, budget=0.2)
    started = time.monotonic()
    assert source.get() is None
    first = time.monotonic() - started
    started = time.monotonic()
    for _ in range(5):
        assert source.get() is None
    later = time.monotonic() - started
    assert 0.15 <= first < 1.0
    assert later < 0.1, "a source already known to be late must not make scrapes wait again"
    assert len(calls) == 1, "no second read may start while the first hangs"
    assert not source.health.up and source.health.errors == 6
    warnings = [r for r in caplog.records if "slow" in r.getMessage()]
    assert len(warnings) == 1
    release.set()
    time.sleep(0.05)
    source._checked_at = None  # let the next get read again
    assert source.get() == "late"
    assert source.health.up


def test_a_raising_read_is_isolated_and_logged_once_per_message(caplog):
    caplog.set_level(logging.WARNING)
    messages = iter(["boom 1", "boom 1", "boom 2"])

    def fail():
        raise RuntimeError(next(messages))

    source = Source("bad", fail, inline=True, max_age=0)
    for _ in range(3):
        assert source.get() is None
    logged = [r.getMessage() for r in caplog.records if "'bad'" in r.getMessage()]
    assert len(logged) == 2 and "boom 1" in logged[0] and "boom 2" in logged[1]
    assert source.health.errors == 3


def test_a_reading_is_never_withheld_before_it_is_due_for_a_refresh():
    """stale_after below max_age would serve nothing between the two (a family blinking off)."""
    now = [0.0]
    source = Source("state", lambda: "open", inline=True, max_age=0.5, stale_after=0.5, clock=lambda: now[0])
    served = []
    for _ in range(20):
        served.append(source.get())
        now[0] += 0.1
    assert served == ["open"] * 20
    with pytest.raises(ValueError, match=r"source 'state': stale_after \(0.5s\) is below max_age \(1s\)"):
        Source("state", lambda: "open", max_age=1.0, stale_after=0.5)


def test_a_constant_is_served_for_ever():
    """``sublarr_info`` comes from one: it must not go stale after the default five minutes."""
    now = [0.0]
    source = constant("info", "1.2.3", clock=lambda: now[0])
    served = []
    for hours in (0, 1, 100):
        now[0] = hours * 3600.0
        served.append(source.get())
    assert served == ["1.2.3"] * 3


def test_last_good_reading_is_served_until_stale():
    now = [0.0]
    outcomes = iter([lambda: 41, lambda: 1 / 0, lambda: 1 / 0])
    source = Source("flaky", lambda: next(outcomes)(), inline=True, max_age=0,
                    stale_after=10, clock=lambda: now[0])
    assert source.get() == 41
    now[0] = 5
    assert source.get() == 41 and not source.health.up
    now[0] = 11
    assert source.get() is None


def test_max_age_reuses_one_reading_across_instruments():
    count = []
    source = Source("shared", lambda: count.append(1) or len(count), inline=True, max_age=60)
    assert [source.get() for _ in range(5)] == [1] * 5
