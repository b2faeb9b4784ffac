"""Where the asynchronous try-ons of /api/jobs live, chosen once at start-up:

    LocalJobs    single-host mode (the default): the in-process scheduler's job table
    ClusterJobs  cluster mode (VTON_REDIS_URL): the BullMQ queue, any API process serves any job
                 (vton.api.cluster_jobs)

The routes call one JobsBackend and never ask which it is. Both deliver a job's webhook from the
API process that accepted the job (vton.api.webhooks).
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from fastapi import Request
from sse_starlette import ServerSentEvent
from starlette.concurrency import run_in_threadpool

from vton.api import presenters
from vton.api.idempotency import LocalIdempotency
from vton.api.job_options import EncodedResults, JobOutput, JobSpec
from vton.api.observe import annotate
from vton.api.schemas.common import ApiModel
from vton.api.schemas.jobs import JobAccepted, JobStatus
from vton.api.uploads import InlineForm
from vton.api.webhooks import Delivery, WebhookRefused, WebhookSender
from vton.config import Settings
from vton.errors import InvalidInput, NotRegistered
from vton.scheduler import ItemFinished, Job, JobFinished, Progress
from vton.service import Service
from vton.service.tryon import Kind, TryOn, TryOnOptions
from vton.store.ids import Category

SSE_SEPARATOR = "\n"
"""Line ends of the event stream (clients that split events on a blank line "\n\n")."""


log = logging.getLogger(__name__)


class JobsBackend(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None:
        """Stops; webhook deliveries not finished are abandoned."""
        ...

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
        """Queues a try-on by reference; raises NotRegistered, QueueFull, WebhookRefused,
        IdempotencyConflict, ... (the same key and body answer the first job)."""
        ...

    async def submit_inline(
        self, request: Request, user_id: str, form: InlineForm, spec: JobSpec
    ) -> JobAccepted:
        """Queues a v1 inline try-on (its images decoded under the decode budget)."""
        ...

    async def status(self, user_id: str, job_id: str) -> JobStatus:
        """The user's job (images inline if it asked); NotRegistered for another user's or an
        unknown id."""
        ...

    async def recent(self, user_id: str, limit: int) -> list[JobStatus]:
        """The user's jobs still readable by id, newest first, at most `limit`, no images."""
        ...

    async def cancel(self, user_id: str, job_id: str) -> JobStatus: ...

    async def result(self, user_id: str, job_id: str, index: int) -> tuple[bytes, str]:
        """Item `index`'s image in the job's output format, and its media type; NotRegistered
        while it has none."""
        ...

    async def events(
        self, user_id: str, job_id: str, last_event_id: str | None
    ) -> AsyncIterator[ServerSentEvent]:
        """The job's server-sent events after Last-Event-ID (checks the job first: raises
        before streaming)."""
        ...


def sse(
    event: str, data: ApiModel | Mapping[str, object], event_id: str | None = None
) -> ServerSentEvent:
    payload = data.model_dump_json() if isinstance(data, ApiModel) else json.dumps(data)
    return ServerSentEvent(data=payload, event=event, id=event_id, sep=SSE_SEPARATOR)


def job_urls(request: Request, job_id: str) -> tuple[str, str]:
    """The job's status and events paths."""
    status_url = str(request.url_for("get_job", job_id=job_id).path)
    return status_url, f"{status_url}/events"


def webhook_body(status: JobStatus) -> bytes:
    """What a webhook POSTs: the finished job without its delivery state."""
    return status.model_dump_json(exclude={"webhook"}).encode()


async def check_webhook(sender: WebhookSender, url: str | None) -> None:
    """Refuses (422) a webhook URL the server would not deliver to, resolving its host now
    (delivery checks again)."""
    if url is None:
        return
    try:
        await sender.policy.resolve(url)
    except ConnectionError as e:
        raise WebhookRefused(f"webhookUrl: {e}") from None


class Tasks:
    """Background coroutines of this process (webhook deliveries), cancelled on close."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[object]] = set()

    def spawn(self, coroutine: Awaitable[object]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@dataclass
class LocalRecord:
    """What a job asked beyond its try-on, and its webhook's delivery (updated in place)."""

    spec: JobSpec
    delivery: Delivery | None = None


class LocalJobs:
    """Jobs in this process's scheduler (the Service, once it has loaded)."""

    def __init__(self, settings: Settings, service: Callable[[], Service]) -> None:
        self.settings = settings
        self._service = service
        self.webhooks = WebhookSender.from_settings(settings)
        self._records: weakref.WeakKeyDictionary[Job, LocalRecord] = weakref.WeakKeyDictionary()
        self._keys = LocalIdempotency()
        self._keyed = asyncio.Lock()
        self._tasks = Tasks()
        self._encoded = EncodedResults()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        await self._tasks.close()

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
        def start() -> Awaitable[TryOn]:
            return run_in_threadpool(
                self._service().tryons.submit_reference,
                user_id,
                clothing_ids,
                category,
                options,
                kind,
                asynchronous=True,
                timeout_s=spec.timeout_s,
            )

        return await self._submit(request, user_id, spec, start)

    async def submit_inline(
        self, request: Request, user_id: str, form: InlineForm, spec: JobSpec
    ) -> JobAccepted:
        return await self._submit(
            request, user_id, spec, lambda: form.submit(self._service(), user_id, True)
        )

    async def _submit(
        self,
        request: Request,
        user_id: str,
        spec: JobSpec,
        start: Callable[[], Awaitable[TryOn]],
    ) -> JobAccepted:
        await check_webhook(self.webhooks, spec.webhook_url)
        keyed = spec.idempotency
        if keyed is None:
            return self._accepted(request, self._track(await start(), spec))
        async with self._keyed:  # check-then-submit, one keyed submission at a time
            job_id = self._keys.find(user_id, keyed.key, keyed.digest)
            if job_id is not None:
                try:
                    return self._accepted(request, self._service().tryons.get(user_id, job_id))
                except NotRegistered:
                    self._keys.forget(user_id, keyed.key)  # dropped early (person deleted)
            tryon = self._track(await start(), spec)
            ttl_s = spec.timeout_s + self.settings.job_ttl_s
            self._keys.remember(user_id, keyed.key, keyed.digest, tryon.job.id, ttl_s)
        return self._accepted(request, tryon)

    def _track(self, tryon: TryOn, spec: JobSpec) -> TryOn:
        """Keeps the job's spec with it, and starts its webhook's delivery."""
        record = LocalRecord(spec)
        if spec.webhook_url is not None:
            record.delivery = Delivery(spec.webhook_url)
            self._tasks.spawn(self._deliver(tryon, record))
        self._records[tryon.job] = record
        return tryon

    async def _deliver(self, tryon: TryOn, record: LocalRecord) -> None:
        """Once the job has finished, its webhook (the record shows each attempt)."""
        assert record.delivery is not None
        async for _event in tryon.job.events():
            pass
        status = await run_in_threadpool(self._status, tryon, False, record.spec.base_url)

        async def update(delivery: Delivery) -> None:
            record.delivery = delivery

        await self.webhooks.deliver(record.delivery, tryon.job.id, webhook_body(status), update)

    async def status(self, user_id: str, job_id: str) -> JobStatus:
        tryon = self._service().tryons.get(user_id, job_id)
        return await run_in_threadpool(self._status, tryon, True)

    async def recent(self, user_id: str, limit: int) -> list[JobStatus]:
        tryons = self._service().tryons.recent(user_id)[:limit]
        return [await run_in_threadpool(self._status, tryon, False) for tryon in tryons]

    async def cancel(self, user_id: str, job_id: str) -> JobStatus:
        tryon = await run_in_threadpool(self._service().tryons.cancel, user_id, job_id)
        return await run_in_threadpool(self._status, tryon, True)

    async def result(self, user_id: str, job_id: str, index: int) -> tuple[bytes, str]:
        tryon = self._service().tryons.get(user_id, job_id)
        if not 0 <= index < len(tryon.request.items):
            raise NotRegistered(f"job {job_id!r} has no item {index}")
        view = await run_in_threadpool(tryon.view, index)
        if view.png is None:
            raise NotRegistered(f"job {job_id!r} item {index} has no image ({view.state})")
        output = self._spec(tryon).output
        image = await run_in_threadpool(self._encoded.encode, job_id, output, index, view.png)
        return image, output.media_type

    def _spec(self, tryon: TryOn) -> JobSpec:
        record = self._records.get(tryon.job)
        return record.spec if record else JobSpec(JobOutput(), tryon.job.timeout_s)

    def _status(self, tryon: TryOn, images: bool, base_url: str = "") -> JobStatus:
        """The job with its items (each image inline when asked: encodes, call from a thread);
        images False: never inline; base_url: prefixed to the image URLs."""
        record = self._records.get(tryon.job)
        output = self._spec(tryon).output
        inline = None
        if images and output.response_format == "base64":
            inline = partial(self._encoded.encode, tryon.job.id, output)
        status = presenters.job_status(tryon, tryon.views(), inline, base_url)
        delivery = record.delivery if record else None
        return status.model_copy(
            update={
                "output_format": output.output_format,
                "webhook": presenters.webhook_status(delivery) if delivery else None,
            }
        )

    async def events(
        self, user_id: str, job_id: str, last_event_id: str | None
    ) -> AsyncIterator[ServerSentEvent]:
        """Event ids are the event's number in the job's history (0, 1, ...): Last-Event-ID n
        resumes after event n; a job in memory replays everything without it."""
        tryon = self._service().tryons.get(user_id, job_id)
        after = -1
        if last_event_id is not None:
            if not last_event_id.isdigit():
                raise InvalidInput(f"Last-Event-ID: {last_event_id!r} is not an event number")
            after = int(last_event_id)
        return self._stream(tryon, after)

    @staticmethod
    def _accepted(request: Request, tryon: TryOn) -> JobAccepted:
        kept = tryon.request
        annotate(request, kind=kept.kind, job=tryon.job.id, clothing=",".join(kept.clothing_ids))
        status_url, events_url = job_urls(request, tryon.job.id)
        return JobAccepted(
            job_id=tryon.job.id,
            state=tryon.job.snapshot().state,
            status_url=status_url,
            events_url=events_url,
        )

    async def _stream(self, tryon: TryOn, after: int) -> AsyncIterator[ServerSentEvent]:
        """Progress, items (URLs, never image bodies) and the end, each with its number."""
        async for seq, event in tryon.job.numbered_events(after):
            event_id = str(seq)
            if isinstance(event, Progress):
                data = {"step": event.step, "totalSteps": event.total_steps}
                yield sse("progress", data, event_id)
            elif isinstance(event, ItemFinished):
                view = await run_in_threadpool(tryon.view, event.index)
                total = presenters.elapsed_ms(tryon)
                yield sse("item", presenters.job_item(tryon, event.index, view, total), event_id)
            elif isinstance(event, JobFinished):
                status = await run_in_threadpool(self._status, tryon, False)
                yield sse("finished", status.model_copy(update={"results": []}), event_id)
