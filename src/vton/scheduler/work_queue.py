"""One worker's waiting items, bounded, and the rule that gathers them into batches (schedule).

A batch is the oldest item plus the later items with the same DiffusionOptions, in arrival order,
up to max_batch. It leaves as soon as it is full, or once the oldest item has waited batch_window
since it was queued: an item that already waited that long (the worker was busy) leaves at once
with whatever company is there. Items with other options keep their places. An item whose job's
deadline passed while it waited, or comes before the batch it would join is expected to end
(`run_s`, the worker's measured batch durations), never joins a batch: its job fails with
JobTimeout there and then (the deadline watcher would too; the engine must not compute what
nobody waits for meanwhile).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from vton.scheduler.errors import SchedulerClosed
from vton.scheduler.job import Job
from vton.scheduler.stages import Batch, WorkItem


class WorkQueue:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: list[WorkItem] = []
        self._cond = threading.Condition()
        self._closed = False

    def depth(self) -> int:
        """Items waiting (not those in a running batch)."""
        with self._cond:
            return len(self._items)

    def has_room(self, n_items: int) -> bool:
        with self._cond:
            return not self._closed and len(self._items) + n_items <= self.capacity

    def put(self, items: Sequence[WorkItem]) -> None:
        """Appends the items; the caller checked has_room under its admission lock."""
        with self._cond:
            if self._closed:
                raise SchedulerClosed("the scheduler is shutting down")
            self._items.extend(items)
            self._cond.notify_all()

    def discard(self, job: Job) -> int:
        """Removes the job's waiting items; returns how many there were."""
        with self._cond:
            kept = [item for item in self._items if item.job is not job]
            removed = len(self._items) - len(kept)
            self._items = kept
            self._cond.notify_all()
            return removed

    def close(self) -> list[WorkItem]:
        """Stops the queue: next_batch returns None from now on; returns the items left."""
        with self._cond:
            self._closed = True
            left, self._items = self._items, []
            self._cond.notify_all()
            return left

    def next_batch(
        self, window_s: float, max_batch: int, run_s: Callable[[int], float] = lambda _n: 0.0
    ) -> Batch | None:
        """Blocks until a batch is ready (see the module docstring); None once closed. `run_s`:
        the expected seconds of a batch of n items."""
        while True:
            with self._cond:
                batch, expired = self._wait_batch(window_s, max_batch, run_s)
            for job in expired:  # outside the lock: expiring a job discards its other items
                job.expire()
            if batch is not None or not expired:
                return batch

    def _wait_batch(
        self, window_s: float, max_batch: int, run_s: Callable[[int], float]
    ) -> tuple[Batch | None, set[Job]]:
        """next_batch's wait, under the lock: a batch, or the jobs whose deadline passed or comes
        before their batch would end (their items removed) as soon as there are any; (None, no
        jobs) once closed."""
        while not self._closed:
            now = time.monotonic()
            expired = {item.job for item in self._items if item.job.deadline <= now}
            if expired:
                self._items = [item for item in self._items if item.job not in expired]
                return None, expired
            if not self._items:
                self._cond.wait()
                continue
            head = self._items[0]
            matching = [item for item in self._items if item.options == head.options]
            chosen = matching[:max_batch]
            wait_s = head.enqueued_at + window_s - now
            if len(chosen) == max_batch or wait_s <= 0:
                ends = now + run_s(len(chosen))
                late = {item.job for item in chosen if item.job.deadline < ends}
                if late:
                    self._items = [item for item in self._items if item.job not in late]
                    return None, late
                taken = set(chosen)
                self._items = [item for item in self._items if item not in taken]
                return Batch(head.options, tuple(chosen)), set()
            self._cond.wait(wait_s)
        return None, set()
