"""Where the asynchronous try-ons of /api/jobs live, chosen once at start-up:

    LocalJobs    single-host mode (the default): the in-process scheduler's job table
    ClusterJobs  cluster mode (VTON_REDIS_URL): the BullMQ queue, any API process serves any job
                 (vton.api.cluster_jobs)

The routes call one JobsBackend and never ask which it is.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Protocol

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from vton.api import presenters
from vton.api.observe import annotate
from vton.api.schemas.common import ApiModel
from vton.api.schemas.jobs import JobAccepted, JobStatus
from vton.api.uploads import InlineForm
from vton.scheduler import ItemFinished, JobFinished, Progress
from vton.service import Service
from vton.service.tryon import Kind, TryOn, TryOnOptions
from vton.store.ids import Category


class JobsBackend(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def submit(
        self,
        request: Request,
        user_id: str,
        clothing_ids: list[str],
        category: Category | None,
        options: TryOnOptions,
        kind: Kind,
    ) -> JobAccepted:
        """Queues a try-on by reference; raises NotRegistered, QueueFull, ..."""
        ...

    async def submit_inline(self, request: Request, user_id: str, form: InlineForm) -> JobAccepted:
        """Queues a v1 inline try-on (its images decoded under the decode budget)."""
        ...

    async def status(self, user_id: str, job_id: str) -> JobStatus:
        """The user's job with its images; NotRegistered for another user's or an unknown id."""
        ...

    async def cancel(self, user_id: str, job_id: str) -> JobStatus: ...

    async def events(
        self, user_id: str, job_id: str, last_event_id: str | None
    ) -> AsyncIterator[str]:
        """The job's server-sent events (checks the job first: raises before streaming)."""
        ...


def sse(event: str, data: ApiModel | Mapping[str, object], event_id: str | None = None) -> str:
    payload = data.model_dump_json() if isinstance(data, ApiModel) else json.dumps(data)
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {payload}\n\n"


def job_urls(request: Request, job_id: str) -> tuple[str, str]:
    """The job's status and events paths."""
    status_url = str(request.url_for("get_job", job_id=job_id).path)
    return status_url, f"{status_url}/events"


class LocalJobs:
    """Jobs in this process's scheduler (the Service, once it has loaded)."""

    def __init__(self, service: Callable[[], Service]) -> None:
        self._service = service

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def submit(
        self,
        request: Request,
        user_id: str,
        clothing_ids: list[str],
        category: Category | None,
        options: TryOnOptions,
        kind: Kind,
    ) -> JobAccepted:
        tryon = await run_in_threadpool(
            self._service().tryons.submit_reference,
            user_id,
            clothing_ids,
            category,
            options,
            kind,
            asynchronous=True,
        )
        return self._accepted(request, tryon)

    async def submit_inline(self, request: Request, user_id: str, form: InlineForm) -> JobAccepted:
        return self._accepted(request, await form.submit(self._service(), user_id, True))

    async def status(self, user_id: str, job_id: str) -> JobStatus:
        tryon = self._service().tryons.get(user_id, job_id)
        return presenters.job_status(tryon, await run_in_threadpool(tryon.views))

    async def cancel(self, user_id: str, job_id: str) -> JobStatus:
        tryon = await run_in_threadpool(self._service().tryons.cancel, user_id, job_id)
        return presenters.job_status(tryon, await run_in_threadpool(tryon.views))

    async def events(
        self, user_id: str, job_id: str, last_event_id: str | None
    ) -> AsyncIterator[str]:
        """A job in memory replays all its events; Last-Event-ID is not needed."""
        return self._stream(self._service().tryons.get(user_id, job_id))

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

    @staticmethod
    async def _stream(tryon: TryOn) -> AsyncIterator[str]:
        async for event in tryon.job.events():
            if isinstance(event, Progress):
                yield sse("progress", {"step": event.step, "totalSteps": event.total_steps})
            elif isinstance(event, ItemFinished):
                view = await run_in_threadpool(tryon.view, event.index)
                total = presenters.elapsed_ms(tryon)
                yield sse("item", presenters.job_item(tryon, event.index, view, total))
            elif isinstance(event, JobFinished):
                yield sse("finished", presenters.job_status(tryon, []))
