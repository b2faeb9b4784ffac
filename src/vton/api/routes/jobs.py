"""Asynchronous try-ons: 202 with a job id, then poll, stream (server-sent events) or cancel.

Events of GET /api/jobs/{id}/events, each `event: <name>` with a JSON `data:` line:
    progress   {"step": k, "totalSteps": n}              after every denoising step
    item       a JobItem (with its image once succeeded)  when an item finishes
    finished   the JobStatus without images               last
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from vton.api import presenters
from vton.api.deps import CurrentUser, ServiceDep, SettingsDep
from vton.api.observe import annotate
from vton.api.routes.fitting import check_batch_size
from vton.api.schemas.common import ERROR_RESPONSES, ApiModel
from vton.api.schemas.jobs import BatchJobRequest, JobAccepted, JobRequest, JobStatus
from vton.api.uploads import InlineForm
from vton.scheduler import ItemFinished, JobFinished, Progress
from vton.service.tryon import Kind, TryOn

router = APIRouter(prefix="/api/jobs", tags=["jobs"], responses=ERROR_RESPONSES)


def accepted(request: Request, tryon: TryOn) -> JobAccepted:
    kept = tryon.request
    annotate(request, kind=kept.kind, job=tryon.job.id, clothing=",".join(kept.clothing_ids))
    status_url = str(request.url_for("get_job", job_id=tryon.job.id).path)
    return JobAccepted(
        job_id=tryon.job.id,
        state=tryon.job.snapshot().state,
        status_url=status_url,
        events_url=f"{status_url}/events",
    )


@router.post("", status_code=202, response_model=JobAccepted)
async def submit_job(
    body: Annotated[JobRequest, Body()],
    request: Request,
    user: CurrentUser,
    service: ServiceDep,
    settings: SettingsDep,
) -> JobAccepted:
    """Queues a single (`type: single`) or batch (`type: batch`) try-on by reference."""
    kind: Kind
    if isinstance(body, BatchJobRequest):
        check_batch_size(body.clothing_ids, settings)
        ids, kind = body.clothing_ids, "batch"
    else:
        ids, kind = [body.clothing_id], "single"
    tryon = await run_in_threadpool(
        service.tryons.submit_reference,
        user,
        ids,
        body.category,
        body.options(),
        kind,
        asynchronous=True,
    )
    return accepted(request, tryon)


@router.post("/inline", status_code=202, response_model=JobAccepted)
async def submit_inline_job(
    form: Annotated[InlineForm, Depends()],
    request: Request,
    user: CurrentUser,
    service: ServiceDep,
) -> JobAccepted:
    """Queues a v1 inline try-on (the multipart form of /api/fitting/single-item-tryon)."""
    tryon = await form.submit(service, user, asynchronous=True)
    return accepted(request, tryon)


@router.get("/{job_id}", response_model=JobStatus)
async def get_job(job_id: str, user: CurrentUser, service: ServiceDep) -> JobStatus:
    """The job's state, progress, and each item's result or error."""
    tryon = service.tryons.get(user, job_id)
    return presenters.job_status(tryon, await run_in_threadpool(tryon.views))


@router.delete("/{job_id}", response_model=JobStatus)
async def cancel_job(job_id: str, user: CurrentUser, service: ServiceDep) -> JobStatus:
    """Cancels the job (queued items leave the queue; a running batch of only cancelled items
    stops between steps); a finished job is left as it is."""
    tryon = await run_in_threadpool(service.tryons.cancel, user, job_id)
    return presenters.job_status(tryon, await run_in_threadpool(tryon.views))


def sse(event: str, data: ApiModel | dict[str, object]) -> str:
    payload = data.model_dump_json() if isinstance(data, ApiModel) else json.dumps(data)
    return f"event: {event}\ndata: {payload}\n\n"


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def job_events(job_id: str, user: CurrentUser, service: ServiceDep) -> StreamingResponse:
    """Server-sent events: progress per denoising step, each item, then the end."""
    tryon = service.tryons.get(user, job_id)
    return StreamingResponse(
        stream(tryon),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def stream(tryon: TryOn) -> AsyncIterator[str]:
    async for event in tryon.job.events():
        if isinstance(event, Progress):
            yield sse("progress", {"step": event.step, "totalSteps": event.total_steps})
        elif isinstance(event, ItemFinished):
            view = await run_in_threadpool(tryon.view, event.index)
            total = presenters.elapsed_ms(tryon)
            yield sse("item", presenters.job_item(tryon, event.index, view, total))
        elif isinstance(event, JobFinished):
            status = presenters.job_status(tryon, [])
            yield sse("finished", status)
