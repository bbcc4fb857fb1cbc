"""Pure readers: process CPU arithmetic, breaker states, queue fallbacks, disks."""
import os
import shutil

import pytest

from telemetry.state.breakers import read_breakers, state_value
from telemetry.state.process import ProcessSampler, read_disks
from telemetry.state.queue import read_memory_queue


def test_first_cpu_reading_is_the_average_since_start_then_deltas():
    wall, cpu = [100.0], [0.0]
    sampler = ProcessSampler(clock=lambda: wall[0], cpu_clock=lambda: cpu[0])
    sampler._started_wall = None  # no psutil start time: first reading has no baseline
    sampler._since_start = lambda: 50.0
    cpu[0] = 5.0
    assert sampler.read().cpu_percent == pytest.approx(10.0)   # 5 s CPU over 50 s of life
    wall[0], cpu[0] = 102.0, 6.5
    assert sampler.read().cpu_percent == pytest.approx(75.0)   # 1.5 s CPU in 2 s
    wall[0] = 104.0
    assert sampler.read().cpu_percent == 0.0


def test_process_reading_is_this_process():
    import psutil
    reading = ProcessSampler().read()
    assert reading.rss_bytes == pytest.approx(psutil.Process(os.getpid()).memory_info().rss, rel=0.2)
    assert reading.cpu_percent > 0


def test_breaker_states_from_strings_and_enums():
    import enum

    class State(enum.Enum):
        CLOSED = "closed"
        OPEN = "open"
        HALF_OPEN = "half_open"

    class Breaker:
        def __init__(self, state):
            self.state = state

    readings = read_breakers({"a": Breaker("closed"), "b": Breaker(State.OPEN), "c": Breaker("HALF_OPEN"),
                              "d": Breaker("weird")})
    assert [(r.provider, r.state) for r in readings] == [("a", 0), ("b", 1), ("c", 2)]
    assert state_value(None) is None


def test_memory_queue_without_count_methods_uses_list_lengths():
    class SublarrStyleQueue:
        def get_queue_length(self):
            return 4

        def get_active_jobs(self):
            return [{}, {}]

        def get_failed_jobs(self):
            return [{}] * 250

    reading = read_memory_queue(SublarrStyleQueue())
    assert (reading.queued, reading.active, reading.failed) == (4, 2, 250)


def test_disk_usage_matches_the_file_system(tmp_path):
    (reading,) = read_disks([str(tmp_path)]).disks
    usage = shutil.disk_usage(tmp_path)
    assert reading.path == str(tmp_path)
    assert reading.used_percent == pytest.approx(100 * usage.used / usage.total, abs=1.0)
