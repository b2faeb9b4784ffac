"""Synchronous try-ons: the request waits for its images.

POST /api/fitting/single-item-tryon-v2   by reference (the caller's registered person, garment)
POST /api/fitting/single-item-tryon      v1: inline multipart images, nothing stored
POST /api/fitting/batch-tryon            one person, several garments
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from vton.api import presenters
from vton.api.deps import CurrentUser, ServiceDep, SettingsDep
from vton.api.observe import annotate
from vton.api.schemas.common import ERROR_RESPONSES
from vton.api.schemas.fitting import (
    BatchTryOnRequest,
    BatchTryOnResponse,
    SingleTryOnRequest,
    TryOnResponse,
)
from vton.api.uploads import InlineForm
from vton.config import Settings
from vton.errors import InvalidInput
from vton.scheduler import EngineFailed, JobTimeout
from vton.service.tryon import ItemView, TryOn

PNG: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}}, "description": "JSON, or PNG with Accept: image/png"}
}
GRACE_S = 5.0
"""Past the scheduler's own deadline, how long a request still waits for the job's end."""

router = APIRouter(prefix="/api/fitting", tags=["fitting"], responses=ERROR_RESPONSES)


async def wait_finished(tryon: TryOn, settings: Settings) -> list[ItemView]:
    """Waits for the job's end (the scheduler fails it at its deadline); returns its items."""
    try:
        async with asyncio.timeout(settings.request_timeout_s + GRACE_S):
            async for _event in tryon.job.events():
                pass
    except TimeoutError:
        raise JobTimeout(f"no result within {settings.request_timeout_s:g} s") from None
    return await run_in_threadpool(tryon.views)


def answer_single(request: Request, tryon: TryOn, views: list[ItemView]) -> Response:
    """The image as JSON, or as PNG when the client accepts image/png; or the item's error."""
    annotate(request, **presenters.log_fields(tryon, views))
    (view,) = views
    if view.png is None:
        raise view.error or tryon.job.snapshot().error or EngineFailed("ended without an image")
    body = presenters.single_response(tryon, view, view.png)
    if "image/png" in request.headers.get("accept", ""):
        server_timing = ", ".join(
            f"{name};dur={ms:.1f}" for name, ms in body.timings.model_dump().items()
        )
        headers = {
            "Server-Timing": server_timing,
            "X-Result-Cached": str(body.result_cached).lower(),
        }
        return Response(view.png, media_type="image/png", headers=headers)
    return Response(body.model_dump_json(), media_type="application/json")


@router.post("/single-item-tryon-v2", response_model=TryOnResponse, responses=PNG)
async def single_item_tryon_v2(
    body: SingleTryOnRequest,
    request: Request,
    user: CurrentUser,
    service: ServiceDep,
    settings: SettingsDep,
) -> Response:
    """One registered garment on the caller's registered person."""
    tryon = await run_in_threadpool(
        service.tryons.submit_reference,
        user,
        [body.clothing_id],
        body.category,
        body.options(),
        "single",
        asynchronous=False,
    )
    return answer_single(request, tryon, await wait_finished(tryon, settings))


@router.post("/single-item-tryon", response_model=TryOnResponse, responses=PNG)
async def single_item_tryon(
    form: Annotated[InlineForm, Depends()],
    request: Request,
    user: CurrentUser,
    service: ServiceDep,
    settings: SettingsDep,
) -> Response:
    """v1: person, mask, DensePose and garment images in the request; nothing is stored."""
    tryon = await form.submit(service, user, asynchronous=False)
    return answer_single(request, tryon, await wait_finished(tryon, settings))


def check_batch_size(clothing_ids: list[str], settings: Settings) -> None:
    if len(clothing_ids) > settings.max_batch_items:
        raise InvalidInput(
            f"clothingIds: {len(clothing_ids)} garments, at most {settings.max_batch_items}"
        )


@router.post("/batch-tryon", response_model=BatchTryOnResponse)
async def batch_tryon(
    body: BatchTryOnRequest,
    request: Request,
    user: CurrentUser,
    service: ServiceDep,
    settings: SettingsDep,
) -> BatchTryOnResponse:
    """Several registered garments on the caller's person; one bad item fails alone."""
    check_batch_size(body.clothing_ids, settings)
    tryon = await run_in_threadpool(
        service.tryons.submit_reference,
        user,
        body.clothing_ids,
        body.category,
        body.options(),
        "batch",
        asynchronous=False,
    )
    views = await wait_finished(tryon, settings)
    annotate(request, **presenters.log_fields(tryon, views))
    return presenters.batch_response(tryon, views)
