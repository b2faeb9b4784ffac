"""The caller's person: PUT registers (replacing), GET describes, DELETE removes; its stored
images (the masks and pose computed or uploaded) are readable one by one."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from vton.api import presenters
from vton.api.deps import CurrentUser, ServiceDep
from vton.api.schemas.common import ERROR_RESPONSES
from vton.api.schemas.registration import PersonInfo, PersonRegistration
from vton.api.uploads import decode_base64
from vton.store.ids import Category

router = APIRouter(prefix="/api/person", tags=["person"], responses=ERROR_RESPONSES)


@router.put("", response_model=PersonInfo)
async def register_person(
    body: PersonRegistration, user: CurrentUser, service: ServiceDep
) -> PersonInfo:
    """Stores the person photo (framed to 3:4), a mask per category and the DensePose image.
    Masks and pose that are not uploaded are computed from the photo (422 NoPersonFound when
    nobody is in it; then nothing is stored)."""
    photo = decode_base64(body.image, "image")
    masks = {c.value: decode_base64(m, f"masks.{c.value}") for c, m in (body.masks or {}).items()}
    pose = None if body.pose is None else decode_base64(body.pose, "pose")
    manifest = await run_in_threadpool(
        service.catalog.register_person, user, photo, masks or None, pose, body.framing
    )
    return presenters.person_info(manifest)


@router.get("", response_model=PersonInfo)
async def get_person(user: CurrentUser, service: ServiceDep) -> PersonInfo:
    manifest = await run_in_threadpool(service.catalog.person, user)
    return presenters.person_info(manifest)


@router.get(
    "/images/{category}/{name}",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
async def get_person_image(
    category: Category,
    name: Literal["human_img", "mask", "mask_gray", "pose"],
    user: CurrentUser,
    service: ServiceDep,
) -> Response:
    """One stored image of the person in the working frame, PNG: the photo, the mask (white =
    repainted), the gray preview, or the DensePose image."""
    png = await run_in_threadpool(service.catalog.person_image, user, category.value, name)
    return Response(png, media_type="image/png")


@router.delete("", status_code=204, response_class=Response)
async def delete_person(user: CurrentUser, service: ServiceDep) -> Response:
    """Removes the person, and every try-on result of it: stored, cached, or in a job (a job
    by reference then answers 404; a running one is cancelled)."""
    await run_in_threadpool(service.delete_person, user)
    return Response(status_code=204)
