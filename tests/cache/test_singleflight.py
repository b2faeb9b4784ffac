"""Single-flight: many concurrent requests for one key, one load."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from vton.cache import Lru, SingleFlight, TieredCache


def test_fifty_concurrent_calls_one_execution() -> None:
    flight = SingleFlight()
    calls = 0
    start = threading.Barrier(50)

    def load() -> str:
        nonlocal calls
        calls += 1
        time.sleep(0.2)
        return "value"

    def request() -> str:
        start.wait()
        return flight.do("key", load)

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lambda _: request(), range(50)))
    assert results == ["value"] * 50
    assert calls == 1
    assert flight.coalesced == 49


def test_an_error_reaches_every_waiter_and_the_next_call_retries() -> None:
    flight = SingleFlight()
    started = threading.Event()

    def failing() -> str:
        started.set()
        time.sleep(0.1)
        raise RuntimeError("boom")

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(flight.do, "k", failing)
        started.wait()
        second = pool.submit(flight.do, "k", lambda: "never run")
        for future in (first, second):
            with pytest.raises(RuntimeError, match="boom"):
                future.result()
    assert flight.do("k", lambda: "fresh") == "fresh"


def test_tiered_cache_fifty_concurrent_gets_one_fetch() -> None:
    cache = TieredCache(Lru(1 << 20))
    fetches = 0
    start = threading.Barrier(50)

    def fetch() -> bytes:
        nonlocal fetches
        fetches += 1
        time.sleep(0.2)
        return b"bytes"

    def get() -> str:
        start.wait()
        return cache.get("users/u1/k", "v1", fetch, lambda b: (b.decode(), len(b)))

    with ThreadPoolExecutor(50) as pool:
        assert set(pool.map(lambda _: get(), range(50))) == {"bytes"}
    assert fetches == 1
    assert cache.stats()["store_loads_total"] == 1
