"""Single-flight: many concurrent requests for one key, one load."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest

from vton.cache import Lru, SingleFlight, TieredCache

T = TypeVar("T")


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


def at_once(n: int, call: Callable[[], T]) -> list[T]:
    """`call` on `n` threads released together."""
    start = threading.Barrier(n)

    def released() -> T:
        start.wait()
        return call()

    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(released) for _ in range(n)]
        return [f.result() for f in futures]


def decode(data: bytes) -> tuple[str, int]:
    return data.decode(), len(data)


def test_tiered_cache_fifty_concurrent_gets_one_fetch_all_from_the_store() -> None:
    """Who waited for another's load reports that load's source: its wait was the store's."""
    cache = TieredCache(Lru(1 << 20))
    fetches = 0

    def fetch() -> bytes:
        nonlocal fetches
        fetches += 1
        time.sleep(0.2)
        return b"bytes"

    found = at_once(50, lambda: cache.get("users/u1/k", "v1", fetch, decode))
    assert found == [("bytes", "store")] * 50
    assert fetches == 1
    assert cache.stats()["coalesced_total"] == 49
    assert cache.stats()["store_loads_total"] == 1


def test_tiered_cache_waiters_for_a_disk_load_report_disk(tmp_path: Path) -> None:
    cache = TieredCache.create(1 << 20, 1 << 20, tmp_path)
    cache.get("users/u1/k", "v1", lambda: b"bytes", decode)
    cache.l1.clear()

    def slow_decode(data: bytes) -> tuple[str, int]:
        time.sleep(0.2)
        return decode(data)

    found = at_once(50, lambda: cache.get("users/u1/k", "v1", lambda: b"never", slow_decode))
    assert found == [("bytes", "disk")] * 50
    assert cache.stats()["l2_hits_total"] == 1
