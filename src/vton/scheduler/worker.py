"""One device's worker: a thread looping schedule -> execute -> update.

Before the loop the thread runs its `prepare` (the service's: bind the thread to its CUDA device
and warm up), so what PyTorch keeps per thread (cuDNN's chosen plans, cuBLAS handles, the current
device) is set up on the thread that serves the batches.

schedule: WorkQueue.next_batch gathers a Batch; execute: BatchExecutor runs it to ItemOutcomes;
update: errors are recorded on the items at once, and outputs go through the post-process (the
service's: paste-back, PNG encoding, the result cache) and are recorded on a finisher thread, so
the device is not kept waiting by that work.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from vton.engine.types import TryOnOutput
from vton.scheduler.batch_times import BatchTimes
from vton.scheduler.config import SchedulerConfig
from vton.scheduler.errors import EngineFailed
from vton.scheduler.executor import BatchExecutor
from vton.scheduler.metrics import SchedulerMetrics
from vton.scheduler.stages import Batch, DevicePipelines, ItemOutcome, PostProcess, WorkItem, by_job
from vton.scheduler.status import ItemResult
from vton.scheduler.work_queue import WorkQueue

logger = logging.getLogger(__name__)

HEADROOM = 0.25
"""The share of a deadline admission keeps free of the expected finish, for what the moving
averages do not see: a slower batch (the machine shared), the post-processing. It costs no
throughput: the engine stays as busy with the queue a bit shorter."""
RETRY_JITTER = 0.2
"""Retry-After is stretched by a random factor up to this much, so refused clients spread out."""


class Worker:
    def __init__(
        self,
        device: str,
        pipelines: DevicePipelines,
        config: SchedulerConfig,
        metrics: SchedulerMetrics,
        post_process: PostProcess,
        prepare: Callable[[], object] | None = None,
    ) -> None:
        self.device = device
        self._prepare = prepare
        self._prepared = threading.Event()
        self._prepare_error: Exception | None = None
        self.queue = WorkQueue(config.max_queue)
        self._config = config
        self._metrics = metrics
        self._post_process = post_process
        self._executor = BatchExecutor(pipelines, metrics.batch_splits.labels(device).inc)
        self._finisher = ThreadPoolExecutor(1, thread_name_prefix=f"vton-finish-{device}")
        self._thread = threading.Thread(
            target=self._loop, name=f"vton-worker-{device}", daemon=True
        )
        self._running = 0
        self._times = BatchTimes(config.max_batch)
        metrics.track_queue(device, self.queue.depth)

    @property
    def load(self) -> int:
        """Items queued or in the running batch."""
        return self.queue.depth() + self._running

    def expected_finish_s(self, n_items: int) -> float:
        """About how long until n_items queued now have finished: the items queued or running and
        these, in batches of max_batch, each as long as batches of its size took (batch_times.py).
        (Counting whole batches at the average duration admitted a burst at the pace of the small
        batches before it, and most of it then timed out on the engine.)"""
        return self._times.to_finish(self.load + n_items)

    def admits(self, n_items: int, timeout_s: float) -> bool:
        """Whether n_items fit in the queue and can finish before a deadline timeout_s from now,
        with HEADROOM (an item that starts but cannot finish in time is computed for nobody). An
        idle worker takes what fits: refusing would not make it sooner, and it measures."""
        in_time = self.expected_finish_s(n_items) <= timeout_s * (1.0 - HEADROOM)
        return self.queue.has_room(n_items) and (in_time or self.load == 0)

    def retry_after_s(self, n_items: int, timeout_s: float) -> float:
        """About how long until `admits` holds: until the items that must leave first have (for
        room in the queue, or for the expected finish to come within timeout_s), never less than
        one batch's average duration, stretched by up to RETRY_JITTER at random."""
        excess = self.queue.depth() + n_items - self.queue.capacity
        for_room_s = self._times.to_finish(excess)
        for_deadline_s = self.expected_finish_s(n_items) - timeout_s * (1.0 - HEADROOM)
        wait_s = max(self._times.average_s, for_room_s, for_deadline_s)
        return wait_s * (1.0 + random.uniform(0.0, RETRY_JITTER))

    def start(self) -> None:
        self._thread.start()

    def wait_prepared(self) -> None:
        """Blocks until the worker thread has run its `prepare`; raises what it raised."""
        self._prepared.wait()
        if self._prepare_error is not None:
            raise self._prepare_error

    def join(self) -> None:
        """Waits for the loop to end (close the queue first) and the finisher to drain."""
        self._thread.join()
        self._finisher.shutdown(wait=True)

    def _loop(self) -> None:
        try:
            if self._prepare is not None:
                self._prepare()
        except Exception as exc:  # start() re-raises it; this worker serves nothing
            self._prepare_error = exc
            return
        finally:
            self._prepared.set()
        window_s = self._config.batch_window_ms / 1000.0
        max_batch, run_s = self._config.max_batch, self._times.measured_of
        while (batch := self.queue.next_batch(window_s, max_batch, run_s)) is not None:
            try:
                self._step(batch)
            except Exception:
                logger.exception("worker %s: batch failed unexpectedly", self.device)
                for item in batch.items:
                    item.job.settle_item(item.index, error=EngineFailed("internal scheduler error"))

    def _step(self, batch: Batch) -> None:
        started = time.monotonic()
        self._running = len(batch.items)
        for job, indices in by_job(batch.items).items():
            job.start_items(indices)
        try:
            outcomes = self._executor.run(batch)
        finally:
            self._running = 0
        seconds = time.monotonic() - started
        self._times.record(len(batch.items), seconds)
        self._metrics.observe_batch(self.device, len(batch.items), seconds)
        logger.info(
            "batch device=%s size=%d steps=%d batch_ms=%.0f",
            self.device,
            len(batch.items),
            batch.options.steps,
            seconds * 1000.0,
        )
        for outcome in outcomes:
            self._update(outcome, started, len(batch.items))

    def _update(self, outcome: ItemOutcome, started: float, batch_size: int) -> None:
        item = outcome.item
        if outcome.output is None:
            logger.warning(
                "item failed job=%s index=%d device=%s: %s",
                item.job.id,
                item.index,
                self.device,
                outcome.error,
            )
            item.job.settle_item(item.index, error=outcome.error)
            return
        timings = dict(outcome.output.timings_ms)
        timings["queue"] = (started - item.enqueued_at) * 1000.0
        self._finisher.submit(self._finish, item, outcome.output, timings, batch_size)

    def _finish(
        self, item: WorkItem, output: TryOnOutput, timings: dict[str, float], batch_size: int
    ) -> None:
        try:
            value = self._post_process(item, output, timings)
        except Exception as exc:
            logger.exception("worker %s: finishing an item failed", self.device)
            error = EngineFailed(f"finishing the image failed: {type(exc).__name__}: {exc}")
            item.job.settle_item(item.index, error=error)
            return
        self._metrics.observe_phases(timings)
        result = ItemResult(value, timings, batch_size=batch_size)
        item.job.settle_item(item.index, result=result)
