"""The jobs of /api/jobs in cluster mode (VTON_REDIS_URL): queued in Redis (BullMQ), run by
`vton worker`s, read back by any API process.

- submit: the person's and garments' registered versions (404 if one is missing), admission
  from the queue's depth (429 + Retry-After), then a TryOnJob under a new vton job id;
- status / cancel: the job as Redis has it, the images read from the store by their result
  keys; another user's job is 404 as in single-host mode;
- events: SSE with each event's stream id as its `id:`, so a client that reconnects (to any API
  process) with Last-Event-ID gets the events it missed, then the live ones.

- a job's own options (output format, webhook), the user's job list and Idempotency-Keys are
  kept in Redis beside the BullMQ job (vton.api.cluster_records); result images are read from
  the store by their result keys and encoded to the job's format on the way out;
- webhooks: the API process that accepted the job waits for its end and delivers it (the state
  goes to Redis, so any process shows it); if that process stops first, the delivery is lost.

Redis that does not answer is 503 (StoreUnavailable). Inline (v1 multipart) jobs are not
queued: their images would have to go to the store first (issue 17), which is not built.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from fastapi import Request
from sse_starlette import ServerSentEvent
from starlette.concurrency import run_in_threadpool

from vton.api import presenters
from vton.api.cluster_records import JobRecords, StoredSpec
from vton.api.idempotency import conflict
from vton.api.job_options import EncodedResults, JobOutput, JobSpec
from vton.api.jobs_backend import Tasks, check_webhook, job_urls, sse, webhook_body
from vton.api.observe import annotate
from vton.api.schemas.common import Timings
from vton.api.schemas.jobs import JobAccepted, JobItem, JobStatus
from vton.api.uploads import InlineForm
from vton.api.webhooks import Delivery, WebhookSender
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
log = logging.getLogger(__name__)
STATES: dict[str, JobState] = {
    "waiting": JobState.QUEUED,
    "delayed": JobState.QUEUED,
    "active": JobState.RUNNING,
    "failed": JobState.FAILED,
    "cancelled": JobState.CANCELLED,
}
MAX_RETRY_AFTER_S = 60.0
FINISHED = ("completed", "failed", "cancelled")
WEBHOOK_GRACE_S = 60.0
"""Past a job's deadline, how long its webhook still waits for a worker to end it."""


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
        self._records: JobRecords | None = None
        self.webhooks = WebhookSender.from_settings(settings)
        self._tasks = Tasks()
        self._encoded = EncodedResults()

    async def start(self) -> None:
        self._queue = TryOnQueue(self.queue_settings)
        self._events = TryOnEvents(self.queue_settings)
        self._records = JobRecords(self.queue_settings)
        await self._redis(self._events.start())

    async def close(self) -> None:
        await self._tasks.close()
        if self._events is not None:
            await self._events.close()
        if self._queue is not None:
            await self._queue.close()
        if self._records is not None:
            await self._records.close()

    @property
    def records(self) -> JobRecords:
        if self._records is None:
            raise StoreUnavailable("the job queue is not started")
        return self._records

    @property
    def records_ttl_s(self) -> int:
        """How long a job's records are kept: as long as the queue keeps a failed job."""
        return self.queue_settings.keep_failed_s

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
        spec: JobSpec,
    ) -> JobAccepted:
        if len(set(clothing_ids)) != len(clothing_ids):
            raise InvalidInput("clothingIds: the same garment is listed twice")
        await check_webhook(self.webhooks, spec.webhook_url)
        job_id = uuid.uuid4().hex
        keyed = spec.idempotency
        if keyed is not None:
            ttl_s = int(spec.timeout_s + self.settings.job_ttl_s) + 1
            held = await self.records.claim(user_id, keyed.key, keyed.digest, job_id, ttl_s)
            if held is not None:
                digest, first = held
                if digest != keyed.digest:
                    raise conflict(keyed.key)
                view = await self._redis(self.queue.get(first))
                state = self._state(view) if view is not None else JobState.QUEUED
                return self._accepted(request, first, kind, clothing_ids, state)
        try:
            await self._enqueue(job_id, user_id, clothing_ids, category, options, kind, spec)
        except BaseException:
            if keyed is not None:
                with suppress(StoreUnavailable):
                    await self.records.release(user_id, keyed.key, job_id)
            raise
        if spec.webhook_url is not None:
            self._tasks.spawn(self._deliver(job_id, spec))
        return self._accepted(request, job_id, kind, clothing_ids, JobState.QUEUED)

    async def _enqueue(
        self,
        job_id: str,
        user_id: str,
        clothing_ids: list[str],
        category: Category | None,
        options: TryOnOptions,
        kind: Kind,
        spec: JobSpec,
    ) -> None:
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
            deadline=now + timedelta(seconds=spec.timeout_s),
        )
        stored = StoredSpec(spec.output, spec.webhook_url, spec.base_url)
        created_ms = int(now.timestamp() * 1000)
        await self.records.add(user_id, job_id, created_ms, stored, self.records_ttl_s)
        await self._redis(self.queue.enqueue(job_id, payload))

    @staticmethod
    def _accepted(
        request: Request, job_id: str, kind: Kind, clothing_ids: list[str], state: JobState
    ) -> JobAccepted:
        annotate(request, kind=kind, job=job_id, clothing=",".join(clothing_ids))
        status_url, events_url = job_urls(request, job_id)
        return JobAccepted(job_id=job_id, state=state, status_url=status_url, events_url=events_url)

    async def submit_inline(
        self, request: Request, user_id: str, form: InlineForm, spec: JobSpec
    ) -> JobAccepted:
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
        return await self._full_status(job_id, view, images=True)

    async def _full_status(
        self, job_id: str, view: JobView, images: bool, base_url: str = ""
    ) -> JobStatus:
        """The job with its spec's output format and its webhook's delivery; each image inline
        when `images` and the job asked for base64; base_url: prefixed to the image URLs."""
        spec = await self.records.spec(job_id)
        delivery = await self.records.delivery(job_id)
        output = spec.output
        inline = output if images and output.response_format == "base64" else None
        status = await run_in_threadpool(self._status, job_id, view, inline, base_url)
        return status.model_copy(
            update={
                "output_format": output.output_format,
                "webhook": presenters.webhook_status(delivery) if delivery else None,
            }
        )

    async def recent(self, user_id: str, limit: int) -> list[JobStatus]:
        statuses = []
        for job_id in await self.records.recent(user_id, limit):
            view = await self._redis(self.queue.get(job_id))
            if view is not None and view.payload is not None and view.payload.user_id == user_id:
                statuses.append(await self._full_status(job_id, view, images=False))
        return statuses

    async def cancel(self, user_id: str, job_id: str) -> JobStatus:
        await self._owned(user_id, job_id)
        await self._redis(self.queue.cancel(job_id))
        return await self.status(user_id, job_id)

    async def result(self, user_id: str, job_id: str, index: int) -> tuple[bytes, str]:
        view = await self._owned(user_id, job_id)
        items = view.result.items if view.result is not None else []
        key = next((i.result_key for i in items if i.index == index), None)
        if key is None:
            raise NotRegistered(f"job {job_id!r} item {index} has no image")
        output = (await self.records.spec(job_id)).output
        png = await run_in_threadpool(self._service().loader.store.get, key)
        image = await run_in_threadpool(self._encoded.encode, job_id, output, index, png)
        return image, output.media_type

    def _status(
        self, job_id: str, view: JobView, inline: JobOutput | None = None, base_url: str = ""
    ) -> JobStatus:
        """The JobStatus of a job as Redis has it; inline: each image in the body too (reads
        and encodes images: a thread)."""
        payload = view.payload
        state = self._state(view)
        steps = payload.options.steps if payload else 0
        n_items = len(payload.garments) if payload else 0
        if view.result is not None:
            results = [self._item(job_id, item, inline, base_url) for item in view.result.items]
        else:
            results = [
                JobItem(index=i, clothing_id=garment.clothing_id, state=state, success=False)
                for i, garment in enumerate(payload.garments if payload else [])
            ]
        progress = view.progress
        done = state is JobState.SUCCEEDED
        total_steps = progress.total_steps if progress else max(1, steps * n_items)
        deadline = payload.deadline if payload else None
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
            deadline_at=deadline.timestamp() if deadline else None,
            results=results,
        )

    @staticmethod
    def _state(view: JobView) -> JobState:
        if view.state == "completed":
            items = view.result.items if view.result else []
            ok = any(item.state == "succeeded" for item in items)
            return JobState.SUCCEEDED if ok else JobState.FAILED
        return STATES[view.state]

    def _item(
        self, job_id: str, item: ItemResult, inline: JobOutput | None, base_url: str
    ) -> JobItem:
        succeeded = item.state == "succeeded" and item.result_key is not None
        image = None
        if succeeded and inline is not None and item.result_key is not None:
            png = self._service().loader.store.get(item.result_key)
            image = presenters.b64(self._encoded.encode(job_id, inline, item.index, png))
        return JobItem(
            index=item.index,
            clothing_id=item.clothing_id,
            state=JobState(item.state),
            success=succeeded,
            image_url=base_url + presenters.result_path(job_id, item.index) if succeeded else None,
            image=image,
            error=f"{item.error_code}: {item.error_message}" if item.error_code else None,
            result_cached=item.cached,
            timings=Timings(**item.timings.model_dump()) if succeeded else None,
            batch_size=item.batch_size,
        )

    # -- webhooks ----------------------------------------------------------------------------

    async def _deliver(self, job_id: str, spec: JobSpec) -> None:
        """Waits for the job's end (or its deadline and a grace), then delivers its webhook."""
        assert spec.webhook_url is not None
        give_up_at = time.time() + spec.timeout_s + WEBHOOK_GRACE_S
        view = await self._wait_finished(job_id, give_up_at)
        if view is None:
            failed = Delivery(spec.webhook_url, state="failed", last_error="the job is gone")
            await self._save_delivery(job_id, failed)
            return
        status = await self._full_status(job_id, view, False, spec.base_url)
        await self.webhooks.deliver(
            Delivery(spec.webhook_url),
            job_id,
            webhook_body(status),
            lambda delivery: self._save_delivery(job_id, delivery),
        )

    async def _save_delivery(self, job_id: str, delivery: Delivery) -> None:
        try:
            await self.records.save_delivery(job_id, delivery, self.records_ttl_s)
        except StoreUnavailable as e:
            log.warning("job %s: webhook state not saved: %s", job_id, e)

    async def _wait_finished(self, job_id: str, give_up_at: float) -> JobView | None:
        """The job once finished (or as it is at give_up_at); None if it is gone."""
        assert self._events is not None
        with self._events.subscribe(job_id) as live:
            while True:
                try:
                    view = await self._redis(self.queue.get(job_id))
                except StoreUnavailable:
                    await asyncio.sleep(1.0)
                    continue
                if view is None or view.state in FINISHED or time.time() >= give_up_at:
                    return view
                with suppress(TimeoutError):
                    async with asyncio.timeout(5.0):  # a missed event costs 5 s at most
                        await live.get()

    # -- events ------------------------------------------------------------------------------

    async def events(
        self, user_id: str, job_id: str, last_event_id: str | None
    ) -> AsyncIterator[ServerSentEvent]:
        await self._owned(user_id, job_id)
        if last_event_id is not None:
            try:
                _stream_id(last_event_id)
            except ValueError:
                raise InvalidInput(f"Last-Event-ID: {last_event_id!r} is not a stream id") from None
        return self._stream(job_id, last_event_id)

    async def _stream(
        self, job_id: str, last_event_id: str | None
    ) -> AsyncIterator[ServerSentEvent]:
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
            if view is None or view.state in FINISHED:
                for chunk in await self._finished_chunks(job_id, view, None):
                    yield chunk
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
    def _progress(progress: TryOnProgress, event_id: str | None) -> ServerSentEvent:
        data = {"step": progress.step, "totalSteps": progress.total_steps}
        return sse("progress", data, event_id)

    async def _render(self, job_id: str, event: QueueEvent) -> AsyncIterator[ServerSentEvent]:
        if event.kind == "progress" and event.progress is not None:
            yield self._progress(event.progress, event.event_id)
        elif event.kind in ("completed", "failed", "removed"):
            view = await self._redis(self.queue.get(job_id))
            for chunk in await self._finished_chunks(job_id, view, event.event_id):
                yield chunk

    async def _finished_chunks(
        self, job_id: str, view: JobView | None, event_id: str | None
    ) -> list[ServerSentEvent]:
        """Each item (its URL, never its image), then `finished` (without items, as in
        single-host mode)."""
        if view is None:
            raise NotRegistered(f"job {job_id!r} not found")
        status = await self._full_status(job_id, view, images=False)
        chunks = [sse("item", item) for item in status.results]
        chunks.append(sse("finished", status.model_copy(update={"results": []}), event_id))
        return chunks
