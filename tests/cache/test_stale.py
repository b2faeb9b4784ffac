"""Stale-if-error: the store's last value stands in for an outage, within the age bound only."""

from __future__ import annotations

import logging

import pytest

from vton.cache.stale import Read, StaleIfError
from vton.errors import NotRegistered, StoreUnavailable


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def down() -> str:
    raise StoreUnavailable("the store does not answer", retry_after_s=7.0)


def missing() -> str:
    raise NotRegistered("gone")


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_an_outage_is_answered_with_the_last_value_until_the_bound(clock: Clock) -> None:
    stale: StaleIfError[str] = StaleIfError(300.0, clock=clock)
    assert stale.read("k", lambda: "v1") == Read("v1", None)
    clock.now += 120.0
    assert stale.read("k", down) == Read("v1", 120.0)
    clock.now += 180.0
    assert stale.read("k", down) == Read("v1", 300.0)
    clock.now += 0.5
    with pytest.raises(StoreUnavailable) as caught:
        stale.read("k", down)
    assert caught.value.retry_after_s == 7.0  # the store's own error, Retry-After and all
    assert stale.served == 2


def test_the_store_answering_again_is_read_fresh_and_restarts_the_bound(clock: Clock) -> None:
    stale: StaleIfError[str] = StaleIfError(300.0, clock=clock)
    stale.read("k", lambda: "v1")
    clock.now += 200.0
    assert stale.read("k", down).age_s == 200.0
    assert stale.read("k", lambda: "v2") == Read("v2", None)  # a re-registration meanwhile
    clock.now += 250.0
    assert stale.read("k", down) == Read("v2", 250.0)


def test_no_value_for_a_key_never_read_a_missing_one_or_a_forgotten_one(clock: Clock) -> None:
    stale: StaleIfError[str] = StaleIfError(300.0, clock=clock)
    with pytest.raises(StoreUnavailable):
        stale.read("never", down)
    stale.read("deleted", lambda: "v1")
    with pytest.raises(NotRegistered):
        stale.read("deleted", missing)
    with pytest.raises(StoreUnavailable):
        stale.read("deleted", down)
    stale.read("re-registered", lambda: "v1")
    stale.forget("re-registered")
    with pytest.raises(StoreUnavailable):
        stale.read("re-registered", down)


def test_fresh_reads_only_and_a_zero_bound_never_stand_in(clock: Clock) -> None:
    stale: StaleIfError[str] = StaleIfError(300.0, clock=clock)
    stale.read("k", lambda: "v1")
    with pytest.raises(StoreUnavailable):
        stale.read("k", down, stale_ok=False)
    off: StaleIfError[str] = StaleIfError(0.0, clock=clock)
    off.read("k", lambda: "v1")
    with pytest.raises(StoreUnavailable):
        off.read("k", down)


def test_entries_are_bounded_least_recently_read_first(clock: Clock) -> None:
    stale: StaleIfError[str] = StaleIfError(300.0, max_entries=2, clock=clock)
    for key in ("a", "b", "c"):
        stale.read(key, lambda key=key: key)
    with pytest.raises(StoreUnavailable):
        stale.read("a", down)
    assert stale.read("c", down).value == "c"


def test_one_warning_per_key_and_outage(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    stale: StaleIfError[str] = StaleIfError(300.0, clock=clock)
    stale.read("k", lambda: "v1")
    with caplog.at_level(logging.WARNING, logger="vton.cache.stale"):
        for _ in range(3):
            stale.read("k", down)
        stale.read("k", lambda: "v1")
        stale.read("k", down)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and all("serving k as the store gave it" in line for line in lines)
