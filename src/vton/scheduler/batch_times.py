"""How long a device's batches take, by size: a moving average of the measured durations of each
size, for admission (when will items queued now have finished?) and Retry-After.

A size not measured yet is estimated from the nearest measured size, in proportion to the sizes:
a batch takes at most its size times as long as one sample (fixed costs are shared), so this errs
long. Batch 8 took 6.8x batch 1 on an H200; on a CPU, batch 1 of the tiny model is mostly fixed
cost. Before any measurement every batch is assumed to take FIRST_BATCH_S.
"""

from __future__ import annotations

import threading

FIRST_BATCH_S = 1.0
"""The batch duration assumed before any batch was measured. (The warm-up is not a seed: it runs
one step of batch 1 on the CPU, far from a request's batch.)"""
SMOOTHING = 0.2
"""Weight of the newest batch in each moving average (the first measurement replaces the guess)."""


class BatchTimes:
    def __init__(self, max_batch: int) -> None:
        self.max_batch = max_batch
        self._by_size: dict[int, float] = {}
        self._average_s = FIRST_BATCH_S
        self._lock = threading.Lock()

    def record(self, size: int, seconds: float) -> None:
        with self._lock:
            measured = bool(self._by_size)
            previous = self._by_size.get(size)
            self._by_size[size] = seconds if previous is None else _smoothed(previous, seconds)
            self._average_s = _smoothed(self._average_s, seconds) if measured else seconds

    @property
    def average_s(self) -> float:
        """The moving average of every batch's duration, whatever its size."""
        return self._average_s

    def of(self, size: int) -> float:
        """The expected duration of a batch of `size`."""
        with self._lock:
            if size in self._by_size:
                return self._by_size[size]
            if not self._by_size:
                return FIRST_BATCH_S
            nearest = min(self._by_size, key=lambda measured: (abs(measured - size), measured))
            return self._by_size[nearest] * size / nearest

    def measured_of(self, size: int) -> float:
        """`of(size)` once a batch was measured, else 0: nothing to go by."""
        return self.of(size) if self._by_size else 0.0

    def to_finish(self, items: int) -> float:
        """The expected seconds to run `items` in batches of max_batch: the full ones, then the
        rest."""
        full, rest = divmod(max(items, 0), self.max_batch)
        return full * self.of(self.max_batch) + (self.of(rest) if rest else 0.0)


def _smoothed(average: float, newest: float) -> float:
    return average + SMOOTHING * (newest - average)
