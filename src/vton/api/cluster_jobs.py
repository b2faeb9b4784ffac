"""The jobs of /api/jobs in cluster mode (VTON_REDIS_URL): queued in Redis (BullMQ), run by
`vton worker`s, read back by any API process.

- submit: the person's and garments' registered versions (404 if one is missing), admission
  from the queue's depth (429 + Retry-After), then a TryOnJob under a new vton job id;
- status / cancel: the job as Redis has it, the images read from the store by their result
  keys; another user's job is 404 as in single-host mode;
- events: SSE with each event's stream id as its `id:`, so a client that reconnects (to any API
  process) with Last-Event-ID gets the events it missed, then the live ones.

Redis that does not answer is 503 (StoreUnavailable). Inline (v1 multipart) jobs are not
queued: their images would have to go to the store first (issue 17), which is not built.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from vton.api import presenters
from vton.api.jobs_backend import job_urls, sse
from vton.api.observe import annotate
from vton.api.schemas.common import Timings
from vton.api.schemas.jobs import JobAccepted, JobItem, JobStatus
from vton.api.uploads import InlineForm
from vton.cluster.messages import (
    GarmentRef,
    ItemResult,
    PersonRef,
    RunOptions,
    TryOnJob,
    TryOnProgress,
)
from vton.cluster.queue import (
    JobView,
    QueueEvent,
    QueueSettings,
    QueueUnavailable,
    TryOnEvents,
    TryOnQueue,
)
from vton.config import Settings
from vton.errors import InvalidInput, NotRegistered, StoreUnavailable
from vton.scheduler import JobState, QueueFull
from vton.service import Service
from vton.service.tryon import Kind, TryOnOptions
from vton.store.ids import Category

T = TypeVar("T")
STATES: dict[str, JobState] = {
    "waiting": JobState.QUEUED,
    "delayed": JobState.QUEUED,
    "active": JobState.RUNNING,
    "failed": JobState.FAILED,
    "cancelled": JobState.CANCELLED,
}
MAX_RETRY_AFTER_S = 60.0


def retry_after_s(waiting: int, active: int) -> float:
    """A rough wait before the queue has room: the waiting jobs drained by as many jobs at a
    time as are running now (about a second each at full size), 1-60 s."""
    return min(MAX_RETRY_AFTER_S, max(1.0, waiting / max(active, 1)))


def _stream_id(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


class ClusterJobs:
    """A JobsBackend on the BullMQ queue."""

    def __init__(
        self, settings: Settings, queue: QueueSettings, service: Callable[[], Service]
    ) -> None:
        """service: the loaded Service (its store and artifact manifests)."""
        self.settings = settings
        self.queue_settings = queue
        self._service = service
        self._queue: TryOnQueue | None = None
        self._events: TryOnEvents | None = None

    async def start(self) -> None:
        self._queue = TryOnQueue(self.queue_settings)
        self._events = TryOnEvents(self.queue_settings)
        await self._redis(self._events.start())

    async def close(self) -> None:
        if self._events is not None:
            await self._events.close()
        if self._queue is not None:
            await self._queue.close()

    @property
    def queue(self) -> TryOnQueue:
        if self._queue is None:
            raise StoreUnavailable("the job queue is not started")
        return self._queue

    async def _redis(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except QueueUnavailable as e:
            raise StoreUnavailable(str(e)) from e

    # -- submitting --------------------------------------------------------------------------

    async def submit(
        self,
        request: Request,
        user_id: str,
        clothing_ids: list[str],
        category: Category | None,
        options: TryOnOptions,
        kind: Kind,
    ) -> JobAccepted:
        if len(set(clothing_ids)) != len(clothing_ids):
            raise InvalidInput("clothingIds: the same garment is listed twice")
        person, garments = await run_in_threadpool(self._versions, user_id, clothing_ids)
        await self._admit()
        now = datetime.now(UTC)
        payload = TryOnJob(
            kind="batch" if kind == "batch" else "single",
            user_id=user_id,
            person=person,
            garments=garments,
            category=category,
            options=RunOptions(
                steps=options.steps,
                scheduler=options.scheduler,
                guidance_scale=options.guidance_scale,
                seed=options.seed,
                paste_back=options.paste_back,
                framing=options.framing,
            ),
            requested_at=now,
            deadline=now + timedelta(seconds=self.settings.request_timeout_s),
        )
        job_id = uuid.uuid4().hex
        await self._redis(self.queue.enqueue(job_id, payload))
        annotate(request, kind=kind, job=job_id, clothing=",".join(clothing_ids))
        status_url, events_url = job_urls(request, job_id)
        return JobAccepted(
            job_id=job_id, state=JobState.QUEUED, status_url=status_url, events_url=events_url
        )

    async def submit_inline(self, request: Request, user_id: str, form: InlineForm) -> JobAccepted:
        raise InvalidInput(
            "inline jobs are not queued in cluster mode: register the person and the garment "
            "and submit by reference"
        )

    def _versions(
        self, user_id: str, clothing_ids: list[str]
    ) -> tuple[PersonRef, list[GarmentRef]]:
        """The registered versions the job will name (NotRegistered if one is missing)."""
        loader = self._service().loader
        person = PersonRef(version=loader.person_manifest(user_id).version)
        garments = [
            GarmentRef(clothing_id=cid, version=loader.garment_manifest(user_id, cid).version)
            for cid in clothing_ids
        ]
        return person, garments

    async def _admit(self) -> None:
        depth = await self._redis(self.queue.depth())
        waiting, active = depth.get("waiting", 0), depth.get("active", 0)
        if waiting >= self.settings.queue_max_waiting:
            wait_s = retry_after_s(waiting, active)
            raise QueueFull(f"the queue is full; retry in about {wait_s:.0f} s", wait_s)

    # -- reading -----------------------------------------------------------------------------

    async def _owned(self, user_id: str, job_id: str) -> JobView:
        view = await self._redis(self.queue.get(job_id))
        if view is None:
            raise NotRegistered(f"job {job_id!r} not found")
        if view.state == "cancelled" and view.payload is None:
            return view  # removed while waiting: only its cancel flag is left
        if view.payload is None or view.payload.user_id != user_id:
            raise NotRegistered(f"job {job_id!r} not found")
        return view

    async def status(self, user_id: str, job_id: str) -> JobStatus:
        view = await self._owned(user_id, job_id)
        return await run_in_threadpool(self._status, job_id, view)

    async def cancel(self, user_id: str, job_id: str) -> JobStatus:
        await self._owned(user_id, job_id)
        await self._redis(self.queue.cancel(job_id))
        return await self.status(user_id, job_id)

    def _status(self, job_id: str, view: JobView) -> JobStatus:
        """The JobStatus of a job as Redis has it (may read PNGs from the store: a thread)."""
        payload = view.payload
        state = self._state(view)
        steps = payload.options.steps if payload else 0
        n_items = len(payload.garments) if payload else 0
        if view.result is not None:
            results = [self._item(item) for item in view.result.items]
        else:
            results = [
                JobItem(index=i, clothing_id=garment.clothing_id, state=state, success=False)
                for i, garment in enumerate(payload.garments if payload else [])
            ]
        progress = view.progress
        done = state is JobState.SUCCEEDED
        total_steps = progress.total_steps if progress else max(1, steps * n_items)
        return JobStatus(
            job_id=job_id,
            type=payload.kind if payload else "single",
            state=state,
            step=total_steps if done else (progress.step if progress else 0),
            total_steps=total_steps,
            error=view.failure.reason() if view.failure else None,
            created_at=view.enqueued_at_ms / 1000.0,
            started_at=view.started_at_ms / 1000.0 if view.started_at_ms else None,
            finished_at=view.finished_at_ms / 1000.0 if view.finished_at_ms else None,
            results=results,
        )

    @staticmethod
    def _state(view: JobView) -> JobState:
        if view.state == "completed":
            items = view.result.items if view.result else []
            ok = any(item.state == "succeeded" for item in items)
            return JobState.SUCCEEDED if ok else JobState.FAILED
        return STATES[view.state]

    def _item(self, item: ItemResult) -> JobItem:
        succeeded = item.state == "succeeded" and item.result_key is not None
        image = None
        if succeeded and item.result_key is not None:
            image = presenters.b64(self._service().loader.store.get(item.result_key))
        return JobItem(
            index=item.index,
            clothing_id=item.clothing_id,
            state=JobState(item.state),
            success=succeeded,
            image=image,
            error=f"{item.error_code}: {item.error_message}" if item.error_code else None,
            result_cached=item.cached,
            timings=Timings(**item.timings.model_dump()) if succeeded else None,
            batch_size=item.batch_size,
        )

    # -- events ------------------------------------------------------------------------------

    async def events(
        self, user_id: str, job_id: str, last_event_id: str | None
    ) -> AsyncIterator[str]:
        await self._owned(user_id, job_id)
        if last_event_id is not None:
            try:
                _stream_id(last_event_id)
            except ValueError:
                raise InvalidInput(f"Last-Event-ID: {last_event_id!r} is not a stream id") from None
        return self._stream(job_id, last_event_id)

    async def _stream(self, job_id: str, last_event_id: str | None) -> AsyncIterator[str]:
        """Missed events (after Last-Event-ID) or the current progress, then the live ones,
        until the job ends. Subscribed before reading, so nothing falls between."""
        assert self._events is not None
        with self._events.subscribe(job_id) as live:
            sent = _stream_id(last_event_id) if last_event_id else (0, 0)
            if last_event_id is not None:
                missed = await self._redis(self.queue.events_since(last_event_id, job_id))
            else:
                missed = []
            for event in missed:
                sent = _stream_id(event.event_id)
                async for chunk in self._render(job_id, event):
                    yield chunk
                if event.kind in ("completed", "failed", "removed"):
                    return
            view = await self._redis(self.queue.get(job_id))
            if view is None or view.state in ("completed", "failed", "cancelled"):
                yield await self._finished_chunks(job_id, view, None)
                return
            if last_event_id is None and view.progress is not None:
                yield self._progress(view.progress, None)
            while True:
                event = await live.get()
                if _stream_id(event.event_id) <= sent:
                    continue
                sent = _stream_id(event.event_id)
                async for chunk in self._render(job_id, event):
                    yield chunk
                if event.kind in ("completed", "failed", "removed"):
                    return

    @staticmethod
    def _progress(progress: TryOnProgress, event_id: str | None) -> str:
        data = {"step": progress.step, "totalSteps": progress.total_steps}
        return sse("progress", data, event_id)

    async def _render(self, job_id: str, event: QueueEvent) -> AsyncIterator[str]:
        if event.kind == "progress" and event.progress is not None:
            yield self._progress(event.progress, event.event_id)
        elif event.kind in ("completed", "failed", "removed"):
            view = await self._redis(self.queue.get(job_id))
            yield await self._finished_chunks(job_id, view, event.event_id)

    async def _finished_chunks(
        self, job_id: str, view: JobView | None, event_id: str | None
    ) -> str:
        """Each item (with its image), then `finished` (without items, as in single-host
        mode)."""
        if view is None:
            raise NotRegistered(f"job {job_id!r} not found")
        status = await run_in_threadpool(self._status, job_id, view)
        chunks = [sse("item", item) for item in status.results]
        chunks.append(sse("finished", status.model_copy(update={"results": []}), event_id))
        return "".join(chunks)
