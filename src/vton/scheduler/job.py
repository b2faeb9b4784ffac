"""A job: one request's items, its state machine and its event stream (thread-safe).

    queued ──> running ──> succeeded | failed | cancelled
       └─────────────────> failed (deadline) | cancelled

A job succeeds when at least one item succeeds (the failed ones carry their errors: one bad item
fails alone), fails when every item failed or the deadline passed, and is cancelled by the client
or by shutdown. Workers write to it from their threads; readers take a JobSnapshot, wait on it from
a thread, or subscribe to its events from asyncio. The job also carries its caller's `request`
(opaque here: the service keeps what it needs to finish the items and answer for the job).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence

from vton.errors import VtonError
from vton.scheduler.errors import JobCancelled, JobTimeout
from vton.scheduler.status import (
    ItemFinished,
    ItemResult,
    ItemStatus,
    JobEvent,
    JobFinished,
    JobSnapshot,
    JobState,
    Progress,
)

_Subscriber = tuple[asyncio.AbstractEventLoop, "asyncio.Queue[tuple[int, JobEvent]]"]


class Job:
    def __init__(
        self,
        user_id: str,
        n_items: int,
        steps: int,
        timeout_s: float,
        device: str | None,
        on_finish: Callable[[Job], None],
        request: object = None,
        keep: bool = True,
        failed_at_submit: int = 0,
    ) -> None:
        """keep: the job stays readable by id for a while after it finishes (asynchronous jobs);
        failed_at_submit: items the caller settles with an error at submit, which never run and
        are left out of the step count."""
        self.id = uuid.uuid4().hex
        self.user_id = user_id
        self.device = device
        """The worker's device; None when every item was settled at submit."""
        self.request = request
        self.keep = keep
        self.created_at = time.time()
        self.timeout_s = timeout_s
        self.deadline = time.monotonic() + timeout_s
        """time.monotonic() past which the job fails with JobTimeout."""
        self._steps = steps
        self._total_steps = steps * (n_items - failed_at_submit)
        self._on_finish = on_finish
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._state = JobState.QUEUED
        self._error: VtonError | None = None
        self._items = [ItemStatus(i, JobState.QUEUED) for i in range(n_items)]
        self._item_steps = [0] * n_items
        self._started_at: float | None = None
        self._finished_at: float | None = None
        self._events: list[JobEvent] = []
        self._subscribers: list[_Subscriber] = []

    # -- reading ----------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """Whether the job reached a final state."""
        return self._state.finished

    def wait(self, timeout: float | None = None) -> bool:
        """Blocks until the job is finished (and the scheduler has accounted for it) or timeout
        seconds passed; True if finished."""
        return self._finished.wait(timeout)

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            return JobSnapshot(
                id=self.id,
                state=self._state,
                step=sum(self._item_steps),
                total_steps=self._total_steps,
                items=tuple(self._items),
                error=self._error,
                created_at=self.created_at,
                started_at=self._started_at,
                finished_at=self._finished_at,
            )

    async def events(self) -> AsyncIterator[JobEvent]:
        """Every event of the job, past ones first, ending with JobFinished."""
        async for _seq, event in self.numbered_events():
            yield event

    async def numbered_events(self, after: int = -1) -> AsyncIterator[tuple[int, JobEvent]]:
        """The job's events after number `after` (each event's number is its position in the
        job's history, from 0: a reconnecting SSE client's Last-Event-ID), past ones first,
        ending with JobFinished."""
        queue: asyncio.Queue[tuple[int, JobEvent]] = asyncio.Queue()
        subscriber = (asyncio.get_running_loop(), queue)
        with self._lock:
            for seq, event in enumerate(self._events):
                if seq > after:
                    queue.put_nowait((seq, event))
            if not self._state.finished:
                self._subscribers.append(subscriber)
            elif after >= len(self._events) - 1:
                return  # the client has seen the end
        try:
            while True:
                seq, event = await queue.get()
                yield seq, event
                if isinstance(event, JobFinished):
                    return
        finally:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

    # -- writing (the scheduler and its workers) --------------------------------------------

    def start_items(self, indices: Sequence[int]) -> None:
        """The items entered a running batch."""
        with self._lock:
            if self._state.finished:
                return
            if self._state is JobState.QUEUED:
                self._state = JobState.RUNNING
                self._started_at = time.time()
            for i in indices:
                self._items[i] = ItemStatus(i, JobState.RUNNING)

    def record_progress(self, indices: Sequence[int], steps_done: int) -> None:
        """The items did steps_done denoising steps (a retry does not move progress back)."""
        with self._lock:
            if self._state.finished:
                return
            before = sum(self._item_steps)
            for i in indices:
                self._item_steps[i] = max(self._item_steps[i], steps_done)
            after = sum(self._item_steps)
            if after > before:
                self._publish(Progress(self.id, after, self._total_steps))

    def settle_item(
        self, index: int, result: ItemResult | None = None, error: VtonError | None = None
    ) -> None:
        """Records the item's result or error; the last one to settle finishes the job."""
        with self._lock:
            if self._state.finished or self._items[index].state.finished:
                return
            if result is not None:
                self._item_steps[index] = self._steps
                self._items[index] = ItemStatus(index, JobState.SUCCEEDED, result=result)
            else:
                self._items[index] = ItemStatus(index, JobState.FAILED, error=error)
            self._publish(ItemFinished(self.id, index, result, error))
            if not all(item.state.finished for item in self._items):
                return
            if any(item.state is JobState.SUCCEEDED for item in self._items):
                self._finish(JobState.SUCCEEDED, None)
            else:
                self._finish(JobState.FAILED, self._items[0].error)
        self._after_finish()

    def cancel(self, reason: str) -> bool:
        """Cancels the job unless it already finished; returns whether it did."""
        return self._end(JobState.CANCELLED, JobCancelled(reason))

    def expire(self) -> bool:
        """Fails the job with JobTimeout unless it already finished; returns whether it did."""
        return self._end(
            JobState.FAILED, JobTimeout(f"no result within the {self.timeout_s:g} s deadline")
        )

    def _end(self, state: JobState, error: VtonError) -> bool:
        with self._lock:
            if self._state.finished:
                return False
            for i, item in enumerate(self._items):
                if not item.state.finished:
                    self._items[i] = ItemStatus(i, state, error=error)
                    self._publish(ItemFinished(self.id, i, None, error))
            self._finish(state, error)
        self._after_finish()
        return True

    def _finish(self, state: JobState, error: VtonError | None) -> None:
        """The final transition; called once, under the lock."""
        self._state = state
        self._error = error
        self._finished_at = time.time()
        self._publish(JobFinished(self.id, state, error))
        self._subscribers.clear()

    def _after_finish(self) -> None:
        """Outside the lock: the scheduler's bookkeeping, then waiters are woken."""
        try:
            self._on_finish(self)
        finally:
            self._finished.set()

    def _publish(self, event: JobEvent) -> None:
        numbered = (len(self._events), event)
        self._events.append(event)
        for loop, queue in list(self._subscribers):
            try:
                loop.call_soon_threadsafe(queue.put_nowait, numbered)
            except RuntimeError:  # the subscriber's loop is closed
                self._subscribers.remove((loop, queue))
