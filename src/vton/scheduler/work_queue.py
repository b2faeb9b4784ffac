"""One worker's waiting items, bounded, and the rule that gathers them into batches (schedule).

A batch is the oldest item plus the later items with the same DiffusionOptions, in arrival order,
up to max_batch. It leaves as soon as it is full, or once the oldest item has waited batch_window
since it was queued: an item that already waited that long (the worker was busy) leaves at once
with whatever company is there. Items with other options keep their places.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

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

    def next_batch(self, window_s: float, max_batch: int) -> Batch | None:
        """Blocks until a batch is ready (see the module docstring); None once closed."""
        with self._cond:
            while not self._closed:
                if not self._items:
                    self._cond.wait()
                    continue
                head = self._items[0]
                matching = [item for item in self._items if item.options == head.options]
                chosen = matching[:max_batch]
                wait_s = head.enqueued_at + window_s - time.monotonic()
                if len(chosen) == max_batch or wait_s <= 0:
                    taken = set(chosen)
                    self._items = [item for item in self._items if item not in taken]
                    return Batch(head.options, tuple(chosen))
                self._cond.wait(wait_s)
            return None
