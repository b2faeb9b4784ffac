"""The one adapter around BullMQ for Python (`bullmq==3.4.4`, the `cluster` extra): try-on jobs
on a Redis queue, shared with any BullMQ producer (Node `bullmq` 6.4.0 runs the same Lua scripts).

    TryOnQueue     API side: enqueue (the vton job id is the BullMQ job id), read, cancel, depth,
                   replay of the event stream after an id
    TryOnEvents    API side: the queue's live events (QueueEvents), fanned out to subscribers
    TryOnConsumer  worker side: pulls up to `concurrency` jobs, validates each payload, runs the
                   handler with a JobContext (progress, cancel requests), completes or fails it

On the wire (see the README's cluster section): queue `vton-tryon`, key prefix `bull`, job name
`tryon`, data = messages.TryOnJob JSON, progress = TryOnProgress JSON, return value =
TryOnResult JSON, failedReason = "code: message" (messages.JobFailure).

Failure semantics (at-least-once, results are deterministic and keyed):
- A killed worker's lock expires after `lock_duration_ms`; the next stalled check (every
  `stalled_interval_ms`, run by any live worker) puts the job back in `wait`, so it runs again
  elsewhere within lock_duration + stalled_interval: 8 s + 4 s by default, measured 8.4-11.7 s
  from SIGKILL to active again on a loaded 2-core machine (10 s + 5 s gave up to 16 s). Only
  the holder of the lock can complete a job, so it completes once. A worker's event loop must
  never block for half a lock, or its renewals stop.
- `max_stalled_count` = 1: the second stall marks the job, and the next worker to take it fails
  it (bullmq's "job stalled more than allowable limit", read back as code `worker_lost`) instead
  of running it a third time.
- Every other failure is final (no bullmq retries): a bad payload (`bad_payload`,
  `unsupported_version`), a wrong job name, a cancel (`cancelled`), a passed deadline
  (`deadline_exceeded`), the handler's own JobFailed, or an unexpected exception (`internal`).
- Cancel: `TryOnQueue.cancel` sets a flag key (`{prefix}:{queue}.cancel:{job id}`, with a TTL)
  and removes the job if it is not locked by a worker; a worker polls the flags of the jobs it
  holds (one MGET every `cancel_poll_s`) and sets their JobContext.cancel_requested, which the
  handler checks between steps. bullmq's own AbortSignal is process-local, so it is not used.
- Redis down: producer calls raise QueueUnavailable within `call_timeout_s` (bullmq's own
  connections retry for minutes); the worker and the event listener reconnect by themselves.

Used from bullmq: Queue.add (jobId, removeOnComplete/removeOnFail by age), Queue.remove,
Queue.getJobCounts, Job.fromId / getState / updateProgress, Worker (concurrency, lockDuration,
stalledInterval, maxStalledCount, graceful and forced close), QueueEvents, UnrecoverableError.
Deliberately not used: the rate limiter and global concurrency (admission is ours, from queue
depth), retries/backoff (`attempts`: a failure is deterministic; a crash is handled by the stall
mechanism), priorities, delayed jobs, deduplication ids (the job id already deduplicates), flows,
job schedulers, the AbortController (process-local), the PostgreSQL backend.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar, cast, get_args

import redis.asyncio as aioredis
from bullmq import Job, Queue, QueueEvents, UnrecoverableError, Worker
from bullmq.queue_keys import QueueKeys
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from vton.cluster.messages import (
    JobFailure,
    PayloadError,
    TryOnJob,
    TryOnProgress,
    TryOnResult,
)
from vton.config import Settings

log = logging.getLogger(__name__)

JOB_NAME = "tryon"
ENQUEUE_NONCE = "vtonEnqueueNonce"
"""A job option only vton reads: which enqueue call created the job."""
StreamEntries = list[tuple[str, dict[str, str]]]
STALLED_REASON = "job stalled more than allowable limit"
"""The failedReason bullmq writes for a job that stalled more than max_stalled_count times."""
EVENTS_BLOCK_MS = 1000
"""How long one read of the events stream blocks: the longest a TryOnEvents.close waits."""


@dataclass(frozen=True)
class QueueSettings:
    """Where the queue lives and its timing. Every process of a deployment uses the same."""

    url: str
    """Redis URL, e.g. redis://redis:6379/0 (VTON_REDIS_URL)."""
    name: str = "vton-tryon"
    prefix: str = "bull"
    """BullMQ's key prefix; "bull" is also @nestjs/bullmq's default."""
    lock_duration_ms: int = 8_000
    """How long a worker's lock on a job lasts without renewal (renewed every 2-4 s)."""
    stalled_interval_ms: int = 4_000
    """How often a live worker looks for jobs whose lock expired."""
    max_stalled_count: int = 1
    """Stalls a job survives; one more fails it with `worker_lost`."""
    keep_completed_s: int = 86_400
    """How long a completed job (its result) stays readable; a resubmitted id within it is a
    no-op, after it the job runs again (and hits the result cache)."""
    keep_failed_s: int = 7 * 86_400
    cancel_poll_s: float = 0.25
    cancel_ttl_s: int = 86_400
    call_timeout_s: float = 5.0
    """Bound on one producer call (enqueue, read, cancel); then QueueUnavailable."""

    def __post_init__(self) -> None:
        if self.lock_duration_ms < 200 or self.stalled_interval_ms < 100:
            raise ValueError(
                f"lock_duration_ms ({self.lock_duration_ms}) must be >= 200 and "
                f"stalled_interval_ms ({self.stalled_interval_ms}) >= 100"
            )
        if self.max_stalled_count < 0:
            raise ValueError(f"max_stalled_count must be >= 0, got {self.max_stalled_count}")

    @property
    def keys(self) -> dict[str, str]:
        """bullmq's Redis keys of this queue ("events", "wait", ...)."""
        return QueueKeys(self.prefix).getKeys(self.name)

    def cancel_key(self, job_id: str) -> str:
        # Outside the queue's own keyspace ("{prefix}:{name}:..."), so no job id can collide.
        return f"{self.prefix}:{self.name}.cancel:{job_id}"

    @property
    def recovery_s(self) -> float:
        """The longest a killed worker's job waits before it can run elsewhere."""
        return (self.lock_duration_ms + self.stalled_interval_ms) / 1000


class QueueUnavailable(Exception):
    """Redis cannot be reached in time (the API answers 503)."""


class JobFailed(Exception):
    """Raised by a handler (or JobContext) to fail the job with a code and message."""

    def __init__(self, code: str, message: str) -> None:
        self.failure = JobFailure(code=code, message=message)
        super().__init__(self.failure.reason())


JobStateName = Literal["waiting", "active", "completed", "failed", "cancelled", "delayed"]


@dataclass(frozen=True)
class JobView:
    """A job as Redis has it now. `payload` is None if its data does not validate."""

    job_id: str
    state: JobStateName
    payload: TryOnJob | None
    progress: TryOnProgress | None
    result: TryOnResult | None
    failure: JobFailure | None
    attempts_started: int
    """Times a worker took it (2 after one stall)."""
    stalls: int
    enqueued_at_ms: int
    started_at_ms: int | None
    finished_at_ms: int | None


@dataclass(frozen=True)
class Enqueued:
    job_id: str
    created: bool
    """False: a job with this id already existed (or was cancelled); nothing was added."""


CancelOutcome = Literal["removed", "requested", "finished", "unknown"]
"""removed: it was waiting and is gone; requested: a worker holds it and will stop it between
steps; finished: it had already completed or failed; unknown: no such job."""


EventKind = Literal["added", "active", "progress", "completed", "failed", "removed", "stalled"]


@dataclass(frozen=True)
class QueueEvent:
    """One entry of the queue's event stream; `event_id` is its stream id (resume after it)."""

    kind: EventKind
    job_id: str
    event_id: str
    progress: TryOnProgress | None = None
    result: TryOnResult | None = None
    failure: JobFailure | None = None


def failure_from_reason(reason: str) -> JobFailure:
    """A failedReason as a JobFailure, bullmq's stall text included."""
    if reason == STALLED_REASON:
        return JobFailure(
            code="worker_lost",
            message="the job's worker died or stalled twice while running it; not retried",
        )
    return JobFailure.from_reason(reason)


_M = TypeVar("_M", TryOnJob, TryOnProgress, TryOnResult)


def _parse_or_none(cls: type[_M], data: object) -> _M | None:
    try:
        return cls.parse(data)
    except PayloadError as e:
        log.warning("unreadable %s: %s", cls.__name__, e)
        return None


_KINDS: frozenset[str] = frozenset(get_args(EventKind))


def event_from_stream(event_id: str, fields: dict[str, Any]) -> QueueEvent | None:
    """Reads one events-stream entry (already JSON-decoded as QueueEvents does); None for the
    kinds vton does not use and entries without a job."""
    kind = fields.get("event")
    job_id = fields.get("jobId")
    if kind not in _KINDS or not isinstance(job_id, str):
        return None
    if kind == "progress":
        progress = _parse_or_none(TryOnProgress, fields.get("data"))
        return QueueEvent("progress", job_id, event_id, progress=progress)
    if kind == "completed":
        result = _parse_or_none(TryOnResult, fields.get("returnvalue"))
        return QueueEvent("completed", job_id, event_id, result=result)
    if kind == "failed":
        failure = failure_from_reason(str(fields.get("failedReason", "")))
        return QueueEvent("failed", job_id, event_id, failure=failure)
    return QueueEvent(kind, job_id, event_id)


def _producer_client(settings: QueueSettings) -> aioredis.Redis:
    """A pooled client that gives up quickly, so a Redis outage becomes a 503, not a hang."""
    return aioredis.Redis.from_url(
        settings.url,
        decode_responses=True,  # bullmq expects str replies
        socket_connect_timeout=min(2.0, settings.call_timeout_s),
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
    )


@asynccontextmanager
async def _bounded(settings: QueueSettings, what: str) -> AsyncIterator[None]:
    try:
        async with asyncio.timeout(settings.call_timeout_s):
            yield
    except (RedisError, OSError, TimeoutError) as e:
        raise QueueUnavailable(f"{what}: Redis at {settings.url} unavailable: {e}") from e


class TryOnQueue:
    """The API processes' side of the queue."""

    def __init__(self, settings: QueueSettings) -> None:
        self.settings = settings
        self._redis = _producer_client(settings)
        self._queue = Queue(settings.name, {"connection": self._redis, "prefix": settings.prefix})

    async def close(self) -> None:
        await self._queue.close()  # closes the shared client too

    async def enqueue(self, job_id: str, payload: TryOnJob) -> Enqueued:
        """Adds the job under `job_id`. An id that exists (in any state, until its age-based
        removal) or was cancelled adds nothing: bullmq's addJob returns the existing id and
        emits `duplicated`, leaving the first job's data untouched."""
        # addJob answers with the id either way. Which call created the job is told by a nonce
        # among the job's options (stored with the job, ignored by bullmq), not by the
        # millisecond timestamp, which two calls can share.
        nonce = uuid.uuid4().hex
        opts = {
            "jobId": job_id,
            "removeOnComplete": {"age": self.settings.keep_completed_s},
            "removeOnFail": {"age": self.settings.keep_failed_s},
            ENQUEUE_NONCE: nonce,
        }
        async with _bounded(self.settings, f"enqueue {job_id}"):
            if await self._redis.exists(self.settings.cancel_key(job_id)):
                return Enqueued(job_id, created=False)
            await self._queue.add(JOB_NAME, payload.dump(), opts)
            stored = await self._redis.hget(f"{self.settings.keys['']}{job_id}", "opts")
        created = stored is not None and json.loads(stored).get(ENQUEUE_NONCE) == nonce
        return Enqueued(job_id, created=created)

    async def get(self, job_id: str) -> JobView | None:
        async with _bounded(self.settings, f"read {job_id}"):
            job = await self._load(job_id)
            if job is None:
                return await self._cancelled_view(job_id)
            view = _view(job, await job.getState())
            return view if view is not None else await self._cancelled_view(job_id)

    async def _load(self, job_id: str) -> Job | None:
        try:
            return await Job.fromId(self._queue, job_id)
        except ValueError as e:  # a hash not written by a BullMQ client: its data is not JSON
            message = f"job {job_id}: stored fields are not JSON: {e}"
            raise PayloadError("bad_payload", message) from e

    async def _cancelled_view(self, job_id: str) -> JobView | None:
        """A job removed by cancel() is gone from bullmq; its cancel flag still answers."""
        if not await self._redis.exists(self.settings.cancel_key(job_id)):
            return None
        return JobView(
            job_id=job_id,
            state="cancelled",
            payload=None,
            progress=None,
            result=None,
            failure=JobFailure(code="cancelled", message="cancelled before a worker took it"),
            attempts_started=0,
            stalls=0,
            enqueued_at_ms=0,
            started_at_ms=None,
            finished_at_ms=None,
        )

    async def cancel(self, job_id: str) -> CancelOutcome:
        """Cancels a waiting job (removed) or asks its worker to stop a running one."""
        async with _bounded(self.settings, f"cancel {job_id}"):
            job = await self._load(job_id)
            if job is None:
                return "unknown"
            state = await job.getState()
            if state in ("completed", "failed"):
                return "finished"
            await self._redis.set(
                self.settings.cancel_key(job_id), "1", ex=self.settings.cancel_ttl_s
            )
            # removeJob refuses (0) a job locked by a worker: that worker sees the flag.
            removed = await self._queue.remove(job_id)
        return "removed" if removed == 1 else "requested"

    async def depth(self) -> dict[str, int]:
        """Jobs per state, for admission (429 when the waiting ones exceed a bound)."""
        async with _bounded(self.settings, "count jobs"):
            counts = await self._queue.getJobCounts("waiting", "active")
        return {state: int(n) for state, n in counts.items()}

    async def events_since(self, after_id: str, job_id: str | None = None) -> list[QueueEvent]:
        """The stream's events after `after_id` (an SSE Last-Event-ID), optionally one job's;
        bounded by the stream's length (bullmq trims it to about 10,000 entries)."""
        async with _bounded(self.settings, "read events"):
            found = await self._redis.xrange(self.settings.keys["events"], f"({after_id}", "+")
        entries = cast(StreamEntries, found)  # decode_responses: str, not bytes
        events = [event_from_stream(eid, _decode_stream_fields(f)) for eid, f in entries]
        return [e for e in events if e is not None and (job_id is None or e.job_id == job_id)]


def _decode_stream_fields(fields: dict[str, str]) -> dict[str, Any]:
    """JSON-decodes the fields QueueEvents decodes (progress data, completed returnvalue)."""
    decoded: dict[str, Any] = dict(fields)
    for name in ("data", "returnvalue"):
        if isinstance(decoded.get(name), str):
            with suppress(ValueError):
                decoded[name] = json.loads(decoded[name])
    return decoded


def _view(job: Job, state: str) -> JobView | None:
    """None for bullmq's "unknown" (the job is being removed)."""
    failure = failure_from_reason(job.failedReason) if job.failedReason else None
    if state in ("wait", "waiting", "prioritized", "waiting-children", "paused"):
        view_state: JobStateName = "waiting"
    elif state == "failed" and failure is not None and failure.code == "cancelled":
        view_state = "cancelled"
    elif state in ("active", "completed", "failed", "delayed"):
        view_state = state  # type: ignore[assignment]
    else:
        return None
    return JobView(
        job_id=job.id,
        state=view_state,
        payload=_parse_or_none(TryOnJob, job.data),
        progress=_parse_or_none(TryOnProgress, job.progress) if job.progress else None,
        result=_parse_or_none(TryOnResult, job.returnvalue) if state == "completed" else None,
        failure=failure if state == "failed" else None,
        attempts_started=job.attemptsStarted,
        stalls=job.stalledCounter,
        enqueued_at_ms=job.timestamp,
        started_at_ms=job.processedOn or None,
        finished_at_ms=job.finishedOn or None,
    )


class TryOnEvents:
    """The queue's live events for one process (one blocking Redis connection), fanned out to
    any number of subscribers. bullmq's QueueEvents stops at its first connection error, so it is
    restarted from the last event seen."""

    def __init__(self, settings: QueueSettings, retry_s: float = 1.0) -> None:
        self.settings = settings
        self._retry_s = retry_s
        self._subscribers: set[tuple[str | None, asyncio.Queue[QueueEvent]]] = set()
        self._last_id = "$"
        self._task: asyncio.Task[None] | None = None
        self._listener: QueueEvents | None = None
        self._closing = False

    async def start(self) -> None:
        """Starts listening; every event added after this returns is delivered. With Redis
        down it starts anyway and listens from when Redis answers."""
        client = _producer_client(self.settings)
        try:
            async with _bounded(self.settings, "read the events stream"):
                last = await client.xrevrange(self.settings.keys["events"], count=1)
            self._last_id = cast(StreamEntries, last)[0][0] if last else "0-0"
        except QueueUnavailable as e:
            log.warning("queue events: %s; listening from when Redis answers", e)
        finally:
            await client.aclose()
        self._task = asyncio.create_task(self._run(), name="vton-queue-events")

    async def close(self) -> None:
        """Stops listening within about one blocking read. The read is not cancelled: redis-py
        8.1 can swallow the cancellation of a blocked XREAD and wait on its socket for ever
        (bullmq's QueueEvents.close does cancel it); the loop ends after its current read."""
        self._closing = True
        if self._listener is not None:
            self._listener.closing = True
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), EVENTS_BLOCK_MS / 1000 + 5.0)
            except TimeoutError:
                log.warning("queue events: the listener did not stop; cancelling it")
                self._task.cancel()
                with suppress(asyncio.CancelledError):
                    await self._task

    @contextmanager
    def subscribe(self, job_id: str | None = None) -> Iterator[asyncio.Queue[QueueEvent]]:
        """A queue of the events of `job_id` (or of every job) for the `with` block."""
        entry: tuple[str | None, asyncio.Queue[QueueEvent]] = (job_id, asyncio.Queue())
        self._subscribers.add(entry)
        try:
            yield entry[1]
        finally:
            self._subscribers.discard(entry)

    async def _run(self) -> None:
        while not self._closing:
            listener = QueueEvents(
                self.settings.name,
                {
                    "connection": self.settings.url,
                    "prefix": self.settings.prefix,
                    "autorun": False,
                    "lastEventId": self._last_id,
                    "blockingTimeout": EVENTS_BLOCK_MS,
                },
            )
            errors: list[Exception] = []
            listener.on("error", errors.append)
            for kind in _KINDS:
                listener.on(kind, self._make_listener(kind))
            self._listener = listener
            try:
                await listener.run()
            except Exception as e:  # e.g. the version check while Redis is down
                errors.append(e)
            finally:
                await listener.redisConnection.close()  # not listener.close(): see close()
            if not self._closing:
                cause = errors[-1] if errors else "stopped"
                log.warning("queue events: %s; reconnecting in %.1fs", cause, self._retry_s)
                await asyncio.sleep(self._retry_s)

    def _make_listener(self, kind: str) -> Callable[[dict[str, Any], str], None]:
        def on_event(args: dict[str, Any], event_id: str) -> None:
            self._last_id = event_id
            event = event_from_stream(event_id, {**args, "event": kind})
            if event is None:
                return
            for job_id, queue in self._subscribers:
                if job_id is None or job_id == event.job_id:
                    queue.put_nowait(event)

        return on_event


@dataclass
class JobContext:
    """What a handler gets for one job."""

    job_id: str
    payload: TryOnJob
    attempt: int
    """1 on the first run, 2 after one stall."""
    _job: Job
    _settings: QueueSettings
    cancel_requested: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when a cancel request for this job is seen; the handler stops between steps."""

    def raise_if_cancelled(self) -> None:
        if self.cancel_requested.is_set():
            raise JobFailed("cancelled", "cancelled while running")

    async def report(self, progress: TryOnProgress) -> None:
        """Best effort: a progress update that cannot be written is logged, not raised."""
        try:
            async with asyncio.timeout(self._settings.call_timeout_s):
                await self._job.updateProgress(progress.dump())
        except (RedisError, OSError, TimeoutError) as e:
            log.warning("job %s: progress not written: %s", self.job_id, e)


Handler = Callable[[JobContext], Awaitable[TryOnResult]]


def prefetch_concurrency(batch_size: int, gpus: int, batches_per_gpu: int = 2) -> int:
    """How many jobs a worker holds at once: about two full batches per GPU, so batches form
    across jobs while the next one is already waiting."""
    if batch_size < 1 or gpus < 1 or batches_per_gpu < 1:
        raise ValueError(f"batch_size, gpus, batches_per_gpu must be >= 1: {batch_size, gpus}")
    return batch_size * gpus * batches_per_gpu


class TryOnConsumer:
    """A GPU worker's side: holds up to `concurrency` jobs and runs `handler` on each."""

    def __init__(self, settings: QueueSettings, handler: Handler, concurrency: int) -> None:
        self.settings = settings
        self._handler = handler
        self._concurrency = concurrency
        self._held: dict[str, JobContext] = {}
        self._flags = _producer_client(settings)  # cancel flags; connects on first use
        self._worker: Worker | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    async def start(self) -> None:
        """Starts taking jobs (call it after warm-up)."""
        self._worker = Worker(
            self.settings.name,
            self._process,
            {
                "connection": self.settings.url,
                "prefix": self.settings.prefix,
                "autorun": False,
                "name": self.name,
                "concurrency": self._concurrency,
                "lockDuration": self.settings.lock_duration_ms,
                "stalledInterval": self.settings.stalled_interval_ms,
                "maxStalledCount": self.settings.max_stalled_count,
            },
        )
        self._worker.on("error", lambda err, *_: log.warning("bullmq worker: %s", err))
        self._tasks = [
            asyncio.create_task(self._worker.run(), name="vton-bullmq-worker"),
            asyncio.create_task(self._poll_cancels(), name="vton-cancel-poll"),
        ]

    async def stop(self, force: bool = False) -> None:
        """Graceful (SIGTERM): finishes the jobs it holds, then returns. force: abandons them
        (their locks expire and other workers run them)."""
        if self._worker is not None:
            await self._worker.close(force=force)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._flags.aclose()

    async def _process(self, job: Job, token: str) -> dict[str, Any]:
        """bullmq's processor: returns the result JSON or raises UnrecoverableError("code: ...")."""
        try:
            context = self._context(job)
            self._held[job.id] = context
            try:
                if await self._cancel_flag(job.id):
                    raise JobFailed("cancelled", "cancelled before it started")
                result = await self._handler(context)
            finally:
                del self._held[job.id]
            if not isinstance(result, TryOnResult):
                raise TypeError(f"handler returned {type(result).__name__}, not TryOnResult")
            return result.dump()
        except JobFailed as e:
            raise UnrecoverableError(e.failure.reason()) from e
        except PayloadError as e:
            raise UnrecoverableError(JobFailure(code=e.code, message=str(e)).reason()) from e
        except Exception as e:
            log.exception("job %s: handler failed", job.id)
            failure = JobFailure(code="internal", message=f"{type(e).__name__}: {e}")
            raise UnrecoverableError(failure.reason()) from e

    def _context(self, job: Job) -> JobContext:
        if job.name != JOB_NAME:
            raise JobFailed("bad_payload", f"job name {job.name!r} is not {JOB_NAME!r}")
        payload = TryOnJob.parse(job.data)
        if payload.expired(datetime.now(UTC)):
            raise JobFailed("deadline_exceeded", f"deadline {payload.deadline} passed")
        return JobContext(job.id, payload, job.attemptsStarted, job, self.settings)

    async def _cancel_flag(self, job_id: str) -> bool:
        """Best effort, like the poll: a Redis error reads as "not cancelled"."""
        try:
            return bool(await self._flags.exists(self.settings.cancel_key(job_id)))
        except (RedisError, OSError) as e:
            log.warning("job %s: cancel flag not read: %s", job_id, e)
            return False

    async def _poll_cancels(self) -> None:
        while True:
            await asyncio.sleep(self.settings.cancel_poll_s)
            held = list(self._held.values())
            if not held:
                continue
            try:
                flags = await self._flags.mget([self.settings.cancel_key(c.job_id) for c in held])
            except (RedisError, OSError) as e:
                log.warning("cancel poll: %s", e)
                continue
            for context, flag in zip(held, flags, strict=True):
                if flag is not None:
                    context.cancel_requested.set()


def queue_settings(settings: Settings) -> QueueSettings:
    """The deployment's queue, from VTON_REDIS_URL and the VTON_QUEUE_* settings."""
    if settings.redis_url is None:
        raise ValueError("VTON_REDIS_URL is not set: cluster mode is off")
    return QueueSettings(
        url=settings.redis_url,
        name=settings.queue_name,
        prefix=settings.queue_prefix,
        lock_duration_ms=settings.queue_lock_ms,
        stalled_interval_ms=settings.queue_stalled_ms,
    )
