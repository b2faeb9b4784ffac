"""A store behind a whole-operation deadline and a circuit breaker, so a silent store fails fast.

Every call runs on a worker thread and the caller waits at most `call_timeout_s` (connects,
reads and the backend's retries included); past it the call fails with StoreUnavailable while the
worker finishes on its own (boto3's connect and read timeouts bound it). After
`failures_to_open` consecutive failures the breaker opens: every call fails at once, with the
time left open as its retry time. Once `open_s` has passed, one trial call goes through: success
closes the breaker, failure opens it again. `reachable()` answers from that state without waiting
on the store; it starts a background probe so the state follows the store even without traffic.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from vton.errors import StoreUnavailable
from vton.store.base import MissingObject, Store

log = logging.getLogger(__name__)

T = TypeVar("T")
PROBE_KEY = "vton-ready-probe"
"""A key that is never written: asking for it proves the store answers."""


@dataclass(frozen=True)
class BreakerConfig:
    call_timeout_s: float = 2.5
    failures_to_open: int = 5
    open_s: float = 10.0
    max_calls: int = 64
    """Store calls running at once; more wait for a worker, within their deadline."""


class CircuitBreaker:
    """closed --(failures_to_open consecutive failures)--> open --(open_s later: one trial call)-->
    closed on success, open again on failure. Thread-safe; the clock is injectable."""

    def __init__(
        self, failures_to_open: int, open_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.failures_to_open = failures_to_open
        self.open_s = open_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._answered = False
        self._opened_at: float | None = None
        self._trial_running = False
        self.rejected = 0
        """Calls refused at once while open (or while the trial call ran)."""
        self.failures = 0
        """Calls that failed (no answer in time, or the store unreachable)."""

    def admit(self) -> bool:
        """Lets a call through (True when it is the trial call) or raises StoreUnavailable."""
        with self._lock:
            if self._opened_at is None:
                return False
            left = self._opened_at + self.open_s - self._clock()
            if left > 0 or self._trial_running:
                self.rejected += 1
                raise StoreUnavailable(
                    f"the store failed {self._failures} calls in a row (circuit breaker open)",
                    retry_after_s=max(left, 0.0),
                )
            self._trial_running = True
            return True

    def succeeded(self, trial: bool) -> None:
        with self._lock:
            if self._opened_at is not None:
                log.info("store answers again: circuit breaker closed")
            self._failures = 0
            self._answered = True
            self._opened_at = None
            self._trial_running &= not trial

    def failed(self, trial: bool) -> None:
        with self._lock:
            self._failures += 1
            self.failures += 1
            if trial or (self._opened_at is None and self._failures >= self.failures_to_open):
                if self._opened_at is None:
                    log.warning("store failed %d calls in a row: breaker open", self._failures)
                self._opened_at = self._clock()
            self._trial_running &= not trial

    def released(self, trial: bool) -> None:
        """A call that ended without a verdict on the store (it refused its own arguments)."""
        with self._lock:
            self._trial_running &= not trial

    @property
    def healthy(self) -> bool:
        """The store has answered, and the last call that ended succeeded (so: closed)."""
        with self._lock:
            return self._answered and self._failures == 0

    @property
    def is_open(self) -> bool:
        """Open or half-open: calls fail at once but for one trial call once it is due."""
        with self._lock:
            return self._opened_at is not None

    def open_left_s(self) -> float:
        """Seconds until the next trial call (0 when closed or due)."""
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self._opened_at + self.open_s - self._clock())


class GuardedStore(Store):
    """`inner` behind a per-call deadline and a circuit breaker (see the module docstring)."""

    def __init__(self, inner: Store, config: BreakerConfig) -> None:
        self.inner = inner
        self.url = inner.url
        self.config = config
        self.breaker = CircuitBreaker(config.failures_to_open, config.open_s)
        self._pool = ThreadPoolExecutor(config.max_calls, thread_name_prefix="store-call")
        self._probing = threading.Lock()

    def retry_after_s(self) -> float:
        """When a client should try again: when the breaker lets a trial through, and never
        sooner than one call's bound."""
        return max(self.config.call_timeout_s, self.breaker.open_left_s())

    def stats(self) -> dict[str, int]:
        """The breaker's state and counters for metrics (monotonic counters end in `_total`)."""
        breaker = self.breaker
        return {
            "breaker_open": int(breaker.is_open),
            "breaker_rejected_total": breaker.rejected,
            "call_failures_total": breaker.failures,
        }

    def _call(self, what: str, action: Callable[[], T]) -> T:
        try:
            trial = self.breaker.admit()
        except StoreUnavailable as e:  # open, or a trial call is under way
            raise StoreUnavailable(f"{self.url}: {what}: {e}", self.retry_after_s()) from None
        future = self._pool.submit(action)
        try:
            result = future.result(timeout=self.config.call_timeout_s)
        except TimeoutError:
            future.cancel()  # still queued: never runs
            self.breaker.failed(trial)
            raise StoreUnavailable(
                f"{self.url}: {what}: no answer within {self.config.call_timeout_s:g} s",
                retry_after_s=self.retry_after_s(),
            ) from None
        except StoreUnavailable as e:
            self.breaker.failed(trial)
            raise StoreUnavailable(str(e), retry_after_s=self.retry_after_s()) from e
        except MissingObject:
            self.breaker.succeeded(trial)
            raise
        except BaseException:
            self.breaker.released(trial)
            raise
        self.breaker.succeeded(trial)
        return result

    def get(self, key: str) -> bytes:
        return self._call(f"reading {key}", lambda: self.inner.get(key))

    def exists(self, key: str) -> bool:
        return self._call(f"checking {key}", lambda: self.inner.exists(key))

    def put(self, key: str, data: bytes) -> None:
        self._call(f"writing {key}", lambda: self.inner.put(key, data))

    def delete(self, key: str) -> None:
        self._call(f"deleting {key}", lambda: self.inner.delete(key))

    def list(self, prefix: str) -> Iterator[str]:
        return iter(self._call(f"listing {prefix}", lambda: list(self.inner.list(prefix))))

    def delete_prefix(self, prefix: str) -> int:
        return self._call(f"deleting under {prefix}", lambda: self.inner.delete_prefix(prefix))

    def reachable(self) -> bool:
        """From the breaker's state, at once; a background probe (one at a time) keeps that state
        current when no request calls the store, and is the trial call once the breaker is due."""
        if self._probing.acquire(blocking=False):
            threading.Thread(target=self._probe, name="store-probe", daemon=True).start()
        return self.breaker.healthy

    def _probe(self) -> None:
        try:
            self.exists(PROBE_KEY)
        except StoreUnavailable:
            pass  # counted by the breaker
        finally:
            self._probing.release()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
