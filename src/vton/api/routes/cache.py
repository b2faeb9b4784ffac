"""Loading a user's artifacts into the caches ahead of try-ons."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from vton.api.deps import CurrentUser, ServiceDep
from vton.api.schemas.common import ERROR_RESPONSES
from vton.api.schemas.registration import WarmupRequest, WarmupResponse

router = APIRouter(prefix="/api/cache", tags=["cache"], responses=ERROR_RESPONSES)


@router.post("/warmup", response_model=WarmupResponse)
async def warmup(body: WarmupRequest, user: CurrentUser, service: ServiceDep) -> WarmupResponse:
    """Loads the caller's person and these garments into memory now."""
    ms = await run_in_threadpool(service.catalog.warm_up, user, body.clothing_ids, body.category)
    return WarmupResponse(loaded=len(body.clothing_ids), milliseconds=ms)
