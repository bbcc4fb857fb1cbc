"""MemoryCache semantics and exact counters under concurrency."""
from __future__ import annotations

import random
import sys
import threading

import pytest

from refapp.cache import MemoryCache, make_cache


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def fast_switching():
    """Switch threads as often as possible to provoke lost updates."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def test_counts_are_exact_under_eight_threads(fast_switching):
    cache = MemoryCache()
    threads, rounds = 8, 4000
    start = threading.Barrier(threads)
    wrong = []  # assertions in threads would not fail the test

    def work(n: int) -> None:
        start.wait()
        for i in range(rounds):
            key = f"t{n}-{i}"
            if cache.get(key) is not None:  # miss
                wrong.append(key)
            cache.set(key, i)
            if cache.get(key) != i:  # hit
                wrong.append(key)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()

    assert wrong == []
    assert cache.get_stats() == {
        "backend": "memory",
        "hits": threads * rounds,
        "misses": threads * rounds,
        "size": threads * rounds,
    }


def test_counts_match_what_callers_saw_under_contention(fast_switching):
    """Shared keys with constant eviction: without the lock, ``get`` races with
    eviction (KeyError) and the counters drift from what callers observed."""
    cache = MemoryCache(max_entries=16)
    threads, rounds = 8, 3000
    observed_hits = [0] * threads
    errors = []
    start = threading.Barrier(threads)

    def work(n: int) -> None:
        rng = random.Random(n)
        start.wait()
        try:
            for i in range(rounds):
                key = f"k{rng.randrange(40)}"
                if cache.get(key) is None:
                    cache.set(key, i)
                else:
                    observed_hits[n] += 1
        except Exception as exc:  # surfaced below; a thread cannot fail the test
            errors.append(repr(exc))

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()

    stats = cache.get_stats()
    assert errors == []
    assert stats["hits"] == sum(observed_hits)
    assert stats["hits"] + stats["misses"] == threads * rounds
    assert stats["size"] == 16


def test_ttl_expiry():
    clock = FakeClock()
    cache = MemoryCache(clock=clock)
    cache.set("k", {"v": 1}, ttl=10)
    cache.set("forever", 1)
    clock.now = 9.9
    assert cache.get("k") == {"v": 1}
    assert cache.exists("k")
    clock.now = 10.0
    assert cache.get("k") is None
    assert not cache.exists("k")
    assert cache.get_stats() == {"backend": "memory", "hits": 1, "misses": 1, "size": 1}


def test_size_excludes_expired_entries_never_read():
    clock = FakeClock()
    cache = MemoryCache(clock=clock)
    cache.set("a", 1, ttl=1)
    cache.set("b", 1, ttl=5)
    clock.now = 2
    assert cache.get_stats()["size"] == 1


def test_max_entries_evicts_least_recently_used():
    cache = MemoryCache(max_entries=2)
    cache.set("a", 1)
    cache.set("b", 2)
    cache.get("a")
    cache.set("c", 3)
    assert cache.exists("a") and cache.exists("c")
    assert not cache.exists("b")
    assert cache.get_stats()["size"] == 2


def test_only_get_counts_and_clear_keeps_totals():
    cache = MemoryCache()
    cache.set("a", 1)
    cache.exists("a")
    cache.exists("zzz")
    assert cache.delete("a") is True
    assert cache.delete("a") is False
    assert cache.get_stats()["hits"] == cache.get_stats()["misses"] == 0

    cache.set("b", 2)
    cache.get("b")
    cache.get("nope")
    cache.clear()
    assert cache.get_stats() == {"backend": "memory", "hits": 1, "misses": 1, "size": 0}


def test_falsy_values_are_hits():
    cache = MemoryCache()
    cache.set("empty", [])
    assert cache.get("empty") == []
    assert cache.get_stats()["hits"] == 1


def test_make_cache_without_redis_is_memory(make_config):
    assert isinstance(make_cache(make_config()), MemoryCache)
