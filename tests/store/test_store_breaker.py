"""A silent store (moto's server holding every request unanswered) behind the deadline and the
circuit breaker: calls fail within the bound, then at once while the breaker is open, and the
store is used again once it answers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from tests.s3_server import S3TestServer, make_s3_store
from vton.errors import StoreUnavailable
from vton.store import MissingObject
from vton.store.breaker import BreakerConfig, CircuitBreaker, GuardedStore

CALL_S = 0.5
OPEN_S = 1.0
SLACK_S = 0.5
AT_ONCE_S = 0.2  # well under CALL_S, with room for a loaded test machine


def guarded(server: S3TestServer, failures: int = 2) -> GuardedStore:
    # boto3 alone would wait up to 3 attempts x 5 s on a silent server
    inner = make_s3_store(server, max_attempts=3, read_timeout_s=5.0)
    config = BreakerConfig(call_timeout_s=CALL_S, failures_to_open=failures, open_s=OPEN_S)
    return GuardedStore(inner, config)


@contextmanager
def frozen(server: S3TestServer) -> Iterator[None]:
    server.freeze()
    try:
        yield
    finally:
        server.thaw()


def seconds_to_fail(call: Callable[[], object], match: str) -> tuple[float, StoreUnavailable]:
    start = time.monotonic()
    with pytest.raises(StoreUnavailable, match=match) as caught:
        call()
    return time.monotonic() - start, caught.value


def test_a_silent_store_fails_in_bound_then_at_once_and_recovers(
    s3_server: S3TestServer,
) -> None:
    store = guarded(s3_server)
    store.put("users/u1/a", b"x")
    closed = {"breaker_open": 0, "breaker_rejected_total": 0, "call_failures_total": 0}
    assert store.stats() == closed
    with frozen(s3_server):
        for _ in range(2):
            elapsed, error = seconds_to_fail(lambda: store.get("users/u1/a"), "no answer within")
            assert CALL_S * 0.9 <= elapsed <= CALL_S + SLACK_S
            assert error.retry_after_s >= CALL_S
        elapsed, error = seconds_to_fail(lambda: store.put("users/u1/b", b"y"), "breaker open")
        assert elapsed < AT_ONCE_S
        assert CALL_S <= error.retry_after_s <= OPEN_S
        opened = {"breaker_open": 1, "breaker_rejected_total": 1, "call_failures_total": 2}
        assert store.stats() == opened
        start = time.monotonic()
        assert not store.reachable()
        assert time.monotonic() - start < AT_ONCE_S
    time.sleep(OPEN_S)
    assert store.get("users/u1/a") == b"x"  # the trial call, and the breaker closes
    assert store.breaker.healthy
    store.put("users/u1/b", b"y")
    assert store.stats()["breaker_open"] == 0


def test_a_failed_trial_opens_the_breaker_again(s3_server: S3TestServer) -> None:
    store = guarded(s3_server, failures=1)
    with frozen(s3_server):
        seconds_to_fail(lambda: store.get("users/u1/a"), "no answer within")
        seconds_to_fail(lambda: store.get("users/u1/a"), "breaker open")
        time.sleep(OPEN_S)
        seconds_to_fail(lambda: store.get("users/u1/a"), "no answer within")  # the trial
        elapsed, _ = seconds_to_fail(lambda: store.get("users/u1/a"), "breaker open")
        assert elapsed < AT_ONCE_S


def test_a_missing_key_is_an_answer(s3_server: S3TestServer) -> None:
    store = guarded(s3_server)
    with frozen(s3_server):
        seconds_to_fail(lambda: store.get("users/u1/a"), "no answer within")
    assert not store.breaker.healthy
    with pytest.raises(MissingObject):
        store.get("users/u1/a")
    assert store.breaker.healthy


def test_the_background_probe_follows_the_store(s3_server: S3TestServer) -> None:
    store = guarded(s3_server, failures=1)
    assert not store.reachable()  # no answer yet: the first call starts a probe
    wait_until(store.reachable)
    with frozen(s3_server):
        wait_until(lambda: not store.reachable())  # the probe times out, the breaker opens
        seconds_to_fail(lambda: store.get("users/u1/a"), "breaker open")
    wait_until(store.reachable, OPEN_S + 2 * CALL_S + 1)  # a probe is the trial call


def test_the_breaker_opens_after_n_failures_and_lets_one_trial_through() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures_to_open=3, open_s=10.0, clock=lambda: now[0])
    for _ in range(2):
        assert breaker.admit() is False
        breaker.failed(trial=False)
    breaker.admit()
    breaker.failed(trial=False)
    with pytest.raises(StoreUnavailable) as caught:
        breaker.admit()
    assert caught.value.retry_after_s == 10.0
    now[0] = 10.0
    assert breaker.admit() is True
    with pytest.raises(StoreUnavailable):
        breaker.admit()  # one trial at a time
    breaker.succeeded(trial=True)
    assert breaker.healthy and breaker.admit() is False


def wait_until(condition: Callable[[], bool], timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)
