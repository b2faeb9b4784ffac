"""The scheduler the API calls: submit, look up, cancel and stream jobs; shut down gracefully.

    scheduler = Scheduler(config, {"cuda:0": DevicePipelines(TryOnPipeline(model))}, post_process)
    scheduler.start()
    job = scheduler.submit(user_id, items, options, request)     # QueueFull, ...
    async for event in job.events(): ...                        # Progress, ItemFinished, ...
    scheduler.cancel(job.id, user_id)
    scheduler.shutdown()

submit routes the job to one worker (routing.py), whose queue gathers its items into batches with
other jobs' items (work_queue.py); every job fails with JobTimeout at its deadline. The job table
is the one registry of jobs: a job kept by id stays in it job_ttl_s after it finishes, any other
leaves it when it finishes (its caller holds it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence

from vton.engine.types import DiffusionOptions, TryOnSample
from vton.errors import InvalidInput, NotRegistered, VtonError
from vton.scheduler.config import SchedulerConfig
from vton.scheduler.deadlines import DeadlineWatcher
from vton.scheduler.errors import QueueFull, SchedulerClosed
from vton.scheduler.job import Job
from vton.scheduler.metrics import SchedulerMetrics
from vton.scheduler.routing import choose_device
from vton.scheduler.stages import DevicePipelines, PostProcess, WorkItem, keep_output
from vton.scheduler.status import ItemResult
from vton.scheduler.worker import Worker

logger = logging.getLogger(__name__)


class Scheduler:
    def __init__(
        self,
        config: SchedulerConfig,
        pipelines: Mapping[str, DevicePipelines],
        post_process: PostProcess = keep_output,
        metrics: SchedulerMetrics | None = None,
        prepare: Mapping[str, Callable[[], object]] | None = None,
    ) -> None:
        """pipelines: one entry per device of config.devices. prepare[device], if given, runs
        first on that device's worker thread (the service warms up there); start() waits.
        post_process makes each item's result from its engine output (stages.PostProcess)."""
        if set(pipelines) != set(config.devices):
            raise InvalidInput(
                f"pipelines: need one per device {config.devices}, got {tuple(pipelines)}"
            )
        self.config = config
        self.metrics = metrics if metrics is not None else SchedulerMetrics()
        self._workers = [
            Worker(
                device,
                pipelines[device],
                config,
                self.metrics,
                post_process,
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
        items: Sequence[TryOnSample | ItemResult | VtonError],
        options: DiffusionOptions,
        request: object = None,
        keep: bool = True,
        timeout_s: float | None = None,
    ) -> Job:
        """Queues one job of len(items) items sharing options; returns it at once.

        A sample is queued for the engine; an ItemResult or an error settles its item at submit
        (the caller's result cache, a garment that could not be loaded), so the job has exactly
        the request's items in its order. `request` rides along on the job (Job.request). keep:
        the job stays readable by id (get, cancel) for job_ttl_s after it finishes; else it
        leaves the table when it finishes. timeout_s: from now to the job's deadline (default:
        request_timeout_s). Raises InvalidInput, QueueFull or SchedulerClosed.
        """
        if timeout_s is None:
            timeout_s = self.config.request_timeout_s
        to_run = {i: item for i, item in enumerate(items) if isinstance(item, TryOnSample)}
        self._check(user_id, len(items), len(to_run))
        errors = sum(isinstance(item, VtonError) for item in items)
        with self._lock:
            if not self._open:
                raise SchedulerClosed("the scheduler is not running")
            self._forget_finished()
            worker = self._route(user_id, len(to_run), timeout_s) if to_run else None
            job = Job(
                user_id,
                len(items),
                options.steps,
                timeout_s,
                worker.device if worker else None,
                self._on_finish,
                request,
                keep,
                failed_at_submit=errors,
            )
            self._jobs[job.id] = job
            if worker is not None:
                now = time.monotonic()
                worker.queue.put([WorkItem(job, i, s, options, now) for i, s in to_run.items()])
                self._deadlines.watch(job)
        for i, item in enumerate(items):  # outside the lock: the last one finishes the job
            if isinstance(item, ItemResult):
                job.settle_item(i, result=item)
            elif isinstance(item, VtonError):
                job.settle_item(i, error=item)
        return job

    def get(self, job_id: str, user_id: str) -> Job:
        """The user's job; NotRegistered if there is none with that id for this user (or it left
        the table)."""
        with self._lock:
            self._forget_finished()
            job = self._jobs.get(job_id)
        if job is None or job.user_id != user_id:
            raise NotRegistered(f"job {job_id!r} not found")
        return job

    def jobs_of(self, user_id: str) -> list[Job]:
        """The user's jobs kept by id (running, or finished within job_ttl_s), newest first."""
        with self._lock:
            self._forget_finished()
            jobs = [j for j in self._jobs.values() if j.user_id == user_id and j.keep]
        return jobs[::-1]  # the table is in submission order

    def cancel(self, job_id: str, user_id: str) -> Job:
        """Cancels the user's job (a no-op if it already finished) and returns it."""
        job = self.get(job_id, user_id)
        job.cancel("cancelled by the client")
        return job

    def forget(self, user_id: str, matches: Callable[[Job], bool], why: str) -> int:
        """Cancels (saying `why`) and drops the user's jobs that `matches`, results and all: their
        ids then answer NotRegistered. Returns how many."""
        with self._lock:
            doomed = [j for j in self._jobs.values() if j.user_id == user_id and matches(j)]
            for job in doomed:
                del self._jobs[job.id]
        for job in doomed:  # outside the lock: a cancel finishes the job
            job.cancel(why)
        return len(doomed)

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

    def _check(self, user_id: str, n_items: int, n_to_run: int) -> None:
        if not user_id:
            raise InvalidInput("user_id: must not be empty")
        if not n_items:
            raise InvalidInput("items: at least one item is needed")
        if n_to_run > self.config.max_queue:
            raise InvalidInput(
                f"items: {n_to_run} samples exceed the queue of {self.config.max_queue}"
            )

    def _route(self, user_id: str, n_items: int, timeout_s: float) -> Worker:
        """A worker with room for the items that is expected to finish them before the job's
        deadline (a job that would only time out, in the queue or on the engine, is refused
        now)."""
        loads = [worker.load for worker in self._workers]
        room = [worker.admits(n_items, timeout_s) for worker in self._workers]
        index = choose_device(user_id, loads, room, self.config.max_batch)
        if index is None:
            retry_after_s = min(w.retry_after_s(n_items, timeout_s) for w in self._workers)
            raise QueueFull(
                "no device can finish the job before its deadline (queue full or too long); "
                f"retry in about {retry_after_s:.0f} s",
                retry_after_s,
            )
        return self._workers[index]

    def _on_finish(self, job: Job) -> None:
        if job.device is not None:
            self._by_device[job.device].queue.discard(job)
        self.metrics.count_items(job.snapshot().items)
        with self._lock:
            if job.keep:
                self._finished.append((time.monotonic(), job.id))
            else:
                self._jobs.pop(job.id, None)

    def _forget_finished(self) -> None:
        """Drops the kept jobs finished more than job_ttl_s ago (called under the lock)."""
        horizon = time.monotonic() - self.config.job_ttl_s
        while self._finished and self._finished[0][0] < horizon:
            self._jobs.pop(self._finished.popleft()[1], None)
