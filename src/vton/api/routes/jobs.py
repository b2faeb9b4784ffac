"""Asynchronous try-ons: 202 with a job id, then poll, stream (server-sent events) or cancel.
The jobs live in the JobsBackend chosen at start-up (the in-process scheduler, or the cluster's
queue with VTON_REDIS_URL).

Events of GET /api/jobs/{id}/events, each `event: <name>` with a JSON `data:` line:
    progress   {"step": k, "totalSteps": n}              after every denoising step
    item       a JobItem (with its image once succeeded)  when an item finishes
    finished   the JobStatus without images               last
In cluster mode events also carry an `id:`; a client that reconnects with Last-Event-ID gets
the events it missed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Request
from fastapi.responses import StreamingResponse

from vton.api.deps import CurrentUser, JobsDep, SettingsDep
from vton.api.routes.fitting import check_batch_size
from vton.api.schemas.common import ERROR_RESPONSES
from vton.api.schemas.jobs import BatchJobRequest, JobAccepted, JobRequest, JobStatus
from vton.api.uploads import InlineForm
from vton.service.tryon import Kind

router = APIRouter(prefix="/api/jobs", tags=["jobs"], responses=ERROR_RESPONSES)


@router.post("", status_code=202, response_model=JobAccepted)
async def submit_job(
    body: Annotated[JobRequest, Body()],
    request: Request,
    user: CurrentUser,
    jobs: JobsDep,
    settings: SettingsDep,
) -> JobAccepted:
    """Queues a single (`type: single`) or batch (`type: batch`) try-on by reference."""
    kind: Kind
    if isinstance(body, BatchJobRequest):
        check_batch_size(body.clothing_ids, settings)
        ids, kind = body.clothing_ids, "batch"
    else:
        ids, kind = [body.clothing_id], "single"
    return await jobs.submit(request, user, ids, body.category, body.options(), kind)


@router.post("/inline", status_code=202, response_model=JobAccepted)
async def submit_inline_job(
    form: Annotated[InlineForm, Depends()],
    request: Request,
    user: CurrentUser,
    jobs: JobsDep,
) -> JobAccepted:
    """Queues a v1 inline try-on (the multipart form of /api/fitting/single-item-tryon)."""
    return await jobs.submit_inline(request, user, form)


@router.get("/{job_id}", response_model=JobStatus)
async def get_job(job_id: str, user: CurrentUser, jobs: JobsDep) -> JobStatus:
    """The job's state, progress, and each item's result or error."""
    return await jobs.status(user, job_id)


@router.delete("/{job_id}", response_model=JobStatus)
async def cancel_job(job_id: str, user: CurrentUser, jobs: JobsDep) -> JobStatus:
    """Cancels the job (queued items leave the queue; a running batch of only cancelled items
    stops between steps); a finished job is left as it is."""
    return await jobs.cancel(user, job_id)


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def job_events(
    job_id: str,
    user: CurrentUser,
    jobs: JobsDep,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Server-sent events: progress per denoising step, each item, then the end."""
    return StreamingResponse(
        await jobs.events(user, job_id, last_event_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
