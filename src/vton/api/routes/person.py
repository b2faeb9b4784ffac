"""The caller's person: PUT registers (replacing), GET describes, DELETE removes."""

from __future__ import annotations

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from vton.api import presenters
from vton.api.deps import CurrentUser, ServiceDep
from vton.api.schemas.common import ERROR_RESPONSES
from vton.api.schemas.registration import PersonInfo, PersonRegistration
from vton.api.uploads import decode_base64

router = APIRouter(prefix="/api/person", tags=["person"], responses=ERROR_RESPONSES)


@router.put("", response_model=PersonInfo)
async def register_person(
    body: PersonRegistration, user: CurrentUser, service: ServiceDep
) -> PersonInfo:
    """Stores the person photo (fitted to 3:4), a mask per category and the DensePose image."""
    photo = decode_base64(body.image, "image")
    masks = {c.value: decode_base64(m, f"masks.{c.value}") for c, m in body.masks.items()}
    pose = decode_base64(body.pose, "pose")
    manifest = await run_in_threadpool(service.catalog.register_person, user, photo, masks, pose)
    return presenters.person_info(manifest)


@router.get("", response_model=PersonInfo)
async def get_person(user: CurrentUser, service: ServiceDep) -> PersonInfo:
    manifest = await run_in_threadpool(service.catalog.person, user)
    return presenters.person_info(manifest)


@router.delete("", status_code=204, response_class=Response)
async def delete_person(user: CurrentUser, service: ServiceDep) -> Response:
    await run_in_threadpool(service.catalog.delete_person, user)
    return Response(status_code=204)
