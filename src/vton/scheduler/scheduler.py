"""The scheduler the API calls: submit, look up, cancel and stream jobs; shut down gracefully.

    scheduler = Scheduler(config, {"cuda:0": DevicePipelines(TryOnPipeline(model))})
    scheduler.start()
    job = scheduler.submit(user_id, samples, options, cache_keys, finishers)  # QueueFull, ...
    async for event in job.events(): ...                             # Progress, ItemFinished, ...
    scheduler.cancel(job.id, user_id)
    scheduler.shutdown()

submit routes the job to one worker (routing.py), whose queue gathers its items into batches with
other jobs' items (work_queue.py); every job fails with JobTimeout at its deadline.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence

from vton.engine.types import DiffusionOptions, TryOnSample
from vton.errors import InvalidInput, NotRegistered
from vton.scheduler.config import SchedulerConfig
from vton.scheduler.deadlines import DeadlineWatcher
from vton.scheduler.errors import QueueFull, SchedulerClosed
from vton.scheduler.job import Job
from vton.scheduler.metrics import SchedulerMetrics
from vton.scheduler.result_cache import InMemoryResultCache, ResultCache
from vton.scheduler.routing import choose_device
from vton.scheduler.types import DevicePipelines, Finisher, ItemResult, WorkItem
from vton.scheduler.worker import Worker

logger = logging.getLogger(__name__)


class Scheduler:
    def __init__(
        self,
        config: SchedulerConfig,
        pipelines: Mapping[str, DevicePipelines],
        result_cache: ResultCache | None = None,
        metrics: SchedulerMetrics | None = None,
        prepare: Mapping[str, Callable[[], object]] | None = None,
    ) -> None:
        """pipelines: one entry per device of config.devices. prepare[device], if given, runs
        first on that device's worker thread (the service warms up there); start() waits."""
        if set(pipelines) != set(config.devices):
            raise InvalidInput(
                f"pipelines: need one per device {config.devices}, got {tuple(pipelines)}"
            )
        self.config = config
        self.metrics = metrics if metrics is not None else SchedulerMetrics()
        self._cache = result_cache if result_cache is not None else InMemoryResultCache()
        self._workers = [
            Worker(
                device,
                pipelines[device],
                config,
                self.metrics,
                self._cache,
                (prepare or {}).get(device),
            )
            for device in config.devices
        ]
        self._by_device = {worker.device: worker for worker in self._workers}
        self._deadlines = DeadlineWatcher()
        self._jobs: dict[str, Job] = {}
        self._finished: deque[tuple[float, str]] = deque()
        self._lock = threading.Lock()  # admission, the job table and the open/closed state
        self._open = False
        self._stopped = False

    def __enter__(self) -> Scheduler:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.shutdown()

    def start(self) -> None:
        """Starts the workers and returns once each has run its `prepare` (raises the first
        failure, with the scheduler shut down)."""
        with self._lock:
            if self._open or self._stopped:
                return
            self._open = True
        self._deadlines.start()
        for worker in self._workers:
            worker.start()  # each prepares on its own thread (the service's take turns)
        try:
            for worker in self._workers:
                worker.wait_prepared()
        except Exception:
            self.shutdown()
            raise
        logger.info(
            "scheduler started devices=%s max_batch=%d batch_window_ms=%g max_queue=%d",
            ",".join(self.config.devices),
            self.config.max_batch,
            self.config.batch_window_ms,
            self.config.max_queue,
        )

    def loads(self) -> dict[str, int]:
        """Items queued or running, per device."""
        return {worker.device: worker.load for worker in self._workers}

    def submit(
        self,
        user_id: str,
        samples: Sequence[TryOnSample],
        options: DiffusionOptions,
        cache_keys: Sequence[str | None] | None = None,
        finishers: Sequence[Finisher | None] | None = None,
    ) -> Job:
        """Queues one job of len(samples) items sharing options; returns it at once.

        cache_keys[i] (ResultKey.digest(), or None for no caching) answers item i from the result
        cache when present and stores its result there. finishers[i] (or None) maps item i's
        image before it is encoded and cached: a cached image is a finished one, so the key must
        describe the finisher too (ResultKey.finish). May block on the result cache's I/O: from
        asyncio, call it in a thread. Raises InvalidInput, QueueFull or SchedulerClosed.
        """
        keys = list(cache_keys) if cache_keys is not None else [None] * len(samples)
        finish = list(finishers) if finishers is not None else [None] * len(samples)
        self._check(user_id, samples, keys, finish)
        cached = {i: png for i, key in enumerate(keys) if key and (png := self._cached(key))}
        misses = [i for i in range(len(samples)) if i not in cached]
        with self._lock:
            if not self._open:
                raise SchedulerClosed("the scheduler is not running")
            self._forget_finished()
            worker = self._route(user_id, len(misses)) if misses else None
            job = Job(
                user_id,
                len(samples),
                options.steps,
                self.config.request_timeout_s,
                worker.device if worker else None,
                self._on_finish,
            )
            self._jobs[job.id] = job
            if worker is not None:
                now = time.monotonic()
                items = [
                    WorkItem(job, i, samples[i], options, keys[i], now, finish[i]) for i in misses
                ]
                worker.queue.put(items)
                self._deadlines.watch(job)
        for i, png in cached.items():  # outside the lock: the last one finishes the job
            job.settle_item(i, result=ItemResult(i, png, {}, cached=True, batch_size=0))
        return job

    def get(self, job_id: str, user_id: str) -> Job:
        """The user's job; NotRegistered if there is none with that id for this user."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None or job.user_id != user_id:
            raise NotRegistered(f"job {job_id!r} not found")
        return job

    def cancel(self, job_id: str, user_id: str) -> Job:
        """Cancels the user's job (a no-op if it already finished) and returns it."""
        job = self.get(job_id, user_id)
        job.cancel("cancelled by the client")
        return job

    def shutdown(self) -> None:
        """Stops taking jobs, cancels the queued ones, lets running batches finish, and joins."""
        with self._lock:
            was_open, self._open, self._stopped = self._open, False, True
        if not was_open:
            return
        queued = {item.job for worker in self._workers for item in worker.queue.close()}
        for job in queued:
            job.cancel("the server is shutting down")
        for worker in self._workers:
            worker.join()
        self._deadlines.close()
        logger.info("scheduler stopped; %d queued job(s) cancelled", len(queued))

    # -- internals ---------------------------------------------------------------------------

    def _check(
        self,
        user_id: str,
        samples: Sequence[TryOnSample],
        keys: list[str | None],
        finishers: list[Finisher | None],
    ) -> None:
        if not user_id:
            raise InvalidInput("user_id: must not be empty")
        if not samples:
            raise InvalidInput("samples: at least one sample is needed")
        if len(keys) != len(samples):
            raise InvalidInput(f"cache_keys: need {len(samples)}, got {len(keys)}")
        if len(finishers) != len(samples):
            raise InvalidInput(f"finishers: need {len(samples)}, got {len(finishers)}")
        if len(samples) > self.config.max_queue:
            raise InvalidInput(
                f"samples: {len(samples)} items exceed the queue of {self.config.max_queue}"
            )

    def _cached(self, key: str) -> bytes | None:
        try:
            return self._cache.get(key)
        except Exception:
            logger.warning("result cache get failed for %s", key, exc_info=True)
            return None

    def _route(self, user_id: str, n_items: int) -> Worker:
        loads = [worker.load for worker in self._workers]
        room = [worker.queue.has_room(n_items) for worker in self._workers]
        index = choose_device(user_id, loads, room, self.config.max_batch)
        if index is None:
            retry_after_s = min(worker.retry_after_s(n_items) for worker in self._workers)
            raise QueueFull(
                f"the queue is full; retry in about {retry_after_s:.0f} s", retry_after_s
            )
        return self._workers[index]

    def _on_finish(self, job: Job) -> None:
        if job.device is not None:
            self._by_device[job.device].queue.discard(job)
        self.metrics.count_items(job.snapshot().items)
        with self._lock:
            self._finished.append((time.monotonic(), job.id))

    def _forget_finished(self) -> None:
        """Drops jobs finished more than job_ttl_s ago (called under the lock)."""
        horizon = time.monotonic() - self.config.job_ttl_s
        while self._finished and self._finished[0][0] < horizon:
            self._jobs.pop(self._finished.popleft()[1], None)
