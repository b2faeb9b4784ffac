"""Asynchronous try-ons: 202 with a job id, then poll, stream (server-sent events), fetch the
images, or cancel. The jobs live in the JobsBackend chosen at start-up (the in-process
scheduler, or the cluster's queue with VTON_REDIS_URL).

A job has its own deadline: `deadlineSeconds`, at most and by default VTON_JOB_TIMEOUT_S (a
synchronous try-on has VTON_REQUEST_TIMEOUT_S). Its images are read from
GET /api/jobs/{id}/results/{index} (`imageUrl` of each item) in its `outputFormat`. GET
/api/jobs/{id} also carries them as base64 (`image`) unless the job asked `responseFormat: url`:
base64 stays the default because clients written before result URLs read `image` there. Events
and webhooks carry URLs only, never image bodies.

Idempotency-Key (POST /api/jobs): the same key and body from the same user, while the first job
is readable (its deadline plus VTON_JOB_TTL_S), answer the first job instead of a new one;
another body with that key is 409 IdempotencyConflict.

Events of GET /api/jobs/{id}/events, each `id: <n>`, `event: <name>` and a JSON `data:` line:
    progress   {"step": k, "totalSteps": n}         after every denoising step
    item       a JobItem, without image body         when an item ends, however it ended
                                                     (succeeded, failed, cancelled, deadline)
    finished   the JobStatus without results         last
A client that reconnects with Last-Event-ID gets the events after that one (in single-host mode
ids are event numbers, in cluster mode Redis stream ids); an idle stream carries a keep-alive
comment every VTON_SSE_PING_S.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from sse_starlette import EventSourceResponse

from vton.api.deps import CurrentUser, JobsDep, SettingsDep
from vton.api.idempotency import body_digest, check_key
from vton.api.job_options import MEDIA_TYPES, Idempotency, JobOutput, JobSpec
from vton.api.jobs_backend import SSE_SEPARATOR
from vton.api.routes.fitting import check_batch_size
from vton.api.schemas.common import ERROR_RESPONSES
from vton.api.schemas.jobs import (
    BatchJobRequest,
    JobAccepted,
    JobList,
    JobRequest,
    JobStatus,
    SingleJobRequest,
)
from vton.api.uploads import InlineForm
from vton.config import Settings
from vton.errors import InvalidInput
from vton.service.tryon import Kind

router = APIRouter(prefix="/api/jobs", tags=["jobs"], responses=ERROR_RESPONSES)

IdempotencyKey = Annotated[
    str | None,
    Header(
        description="Retry-safe submission: the same key and body answer the first job; "
        "another body with the key is 409.",
        max_length=255,
    ),
]


def job_spec(
    body: SingleJobRequest | BatchJobRequest,
    request: Request,
    settings: Settings,
    idempotency_key: str | None,
) -> JobSpec:
    deadline_s = body.deadline_seconds
    if deadline_s is not None and deadline_s > settings.job_timeout_s:
        raise InvalidInput(
            f"deadlineSeconds: {deadline_s:g} s, at most {settings.job_timeout_s:g} s "
            "(VTON_JOB_TIMEOUT_S)"
        )
    keyed = None
    if idempotency_key is not None:
        digest = body_digest("POST /api/jobs", body.model_dump_json())
        keyed = Idempotency(check_key(idempotency_key), digest)
    return JobSpec(
        output=body.output(),
        timeout_s=deadline_s or settings.job_timeout_s,
        webhook_url=body.webhook_url,
        idempotency=keyed,
        base_url=str(request.base_url).rstrip("/"),
    )


@router.post("", status_code=202, response_model=JobAccepted)
async def submit_job(
    body: Annotated[JobRequest, Body()],
    request: Request,
    user: CurrentUser,
    jobs: JobsDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> JobAccepted:
    """Queues a single (`type: single`) or batch (`type: batch`) try-on by reference."""
    kind: Kind
    if isinstance(body, BatchJobRequest):
        check_batch_size(body.clothing_ids, settings)
        ids, kind = body.clothing_ids, "batch"
    else:
        ids, kind = [body.clothing_id], "single"
    spec = job_spec(body, request, settings, idempotency_key)
    return await jobs.submit(request, user, ids, body.category, body.options(), kind, spec)


@router.post("/inline", status_code=202, response_model=JobAccepted)
async def submit_inline_job(
    form: Annotated[InlineForm, Depends()],
    request: Request,
    user: CurrentUser,
    jobs: JobsDep,
    settings: SettingsDep,
) -> JobAccepted:
    """Queues a v1 inline try-on (the multipart form of /api/fitting/single-item-tryon): PNG,
    base64 in GET, VTON_JOB_TIMEOUT_S."""
    base_url = str(request.base_url).rstrip("/")
    spec = JobSpec(JobOutput(), settings.job_timeout_s, base_url=base_url)
    return await jobs.submit_inline(request, user, form, spec)


@router.get("", response_model=JobList)
async def list_jobs(
    user: CurrentUser,
    jobs: JobsDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JobList:
    """The caller's jobs still readable by id (running, or finished within VTON_JOB_TTL_S),
    newest first, with result URLs but no image bodies."""
    return JobList(jobs=await jobs.recent(user, limit))


@router.get("/{job_id}", response_model=JobStatus)
async def get_job(job_id: str, user: CurrentUser, jobs: JobsDep) -> JobStatus:
    """The job's state, progress, each item's result URL (and image, with responseFormat
    base64) or error, and its webhook's delivery."""
    return await jobs.status(user, job_id)


@router.delete("/{job_id}", response_model=JobStatus)
async def cancel_job(job_id: str, user: CurrentUser, jobs: JobsDep) -> JobStatus:
    """Cancels the job (queued items leave the queue; a running batch of only cancelled items
    stops between steps); a finished job is left as it is."""
    return await jobs.cancel(user, job_id)


@router.get(
    "/{job_id}/results/{index}",
    response_class=Response,
    responses={200: {"content": {media: {} for media in MEDIA_TYPES.values()}}},
)
async def get_result(
    job_id: str,
    index: Annotated[int, Path(ge=0, le=1000)],
    user: CurrentUser,
    jobs: JobsDep,
) -> Response:
    """Item `index`'s image in the job's outputFormat (only the job's owner; 404 while the
    item has none)."""
    image, media_type = await jobs.result(user, job_id, index)
    return Response(image, media_type=media_type, headers={"Cache-Control": "private"})


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def job_events(
    job_id: str,
    user: CurrentUser,
    jobs: JobsDep,
    settings: SettingsDep,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> EventSourceResponse:
    """Server-sent events: progress per denoising step, each item, then the end."""
    return EventSourceResponse(
        await jobs.events(user, job_id, last_event_id),
        ping=settings.sse_ping_s,
        sep=SSE_SEPARATOR,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
