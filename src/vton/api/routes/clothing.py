"""The caller's garments: register, list, describe, fetch the image, delete."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from vton.api import presenters
from vton.api.deps import CurrentUser, ServiceDep
from vton.api.schemas.common import ERROR_RESPONSES, ClothingIdPath
from vton.api.schemas.registration import ClothingInfo, ClothingList, ClothingRegistration
from vton.api.uploads import decode_base64

router = APIRouter(prefix="/api/clothing", tags=["clothing"], responses=ERROR_RESPONSES)


@router.post("", status_code=201, response_model=ClothingInfo)
async def register_clothing(
    body: ClothingRegistration, user: CurrentUser, service: ServiceDep
) -> ClothingInfo:
    """Stores a garment (photo fitted to 3:4, text embeddings of the description); the same
    clothingId again replaces it."""
    photo = decode_base64(body.image, "image")
    clothing_id = body.clothing_id or uuid.uuid4().hex
    manifest = await run_in_threadpool(
        service.catalog.register_garment,
        user,
        clothing_id,
        photo,
        body.description,
        body.category,
    )
    return presenters.clothing_info(manifest)


@router.get("", response_model=ClothingList)
async def list_clothing(user: CurrentUser, service: ServiceDep) -> ClothingList:
    manifests = await run_in_threadpool(service.catalog.garments, user)
    return ClothingList(items=[presenters.clothing_info(m) for m in manifests])


@router.get("/{clothing_id}", response_model=ClothingInfo)
async def get_clothing(
    clothing_id: ClothingIdPath, user: CurrentUser, service: ServiceDep
) -> ClothingInfo:
    manifest = await run_in_threadpool(service.catalog.garment, user, clothing_id)
    return presenters.clothing_info(manifest)


@router.get(
    "/{clothing_id}/image",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
async def get_clothing_image(
    clothing_id: ClothingIdPath, user: CurrentUser, service: ServiceDep
) -> Response:
    """The stored garment image (fitted to the working 3:4 frame), PNG."""
    png = await run_in_threadpool(service.catalog.garment_image, user, clothing_id)
    return Response(png, media_type="image/png")


@router.delete("/{clothing_id}", status_code=204, response_class=Response)
async def delete_clothing(
    clothing_id: ClothingIdPath, user: CurrentUser, service: ServiceDep
) -> Response:
    """Removes the garment, and every try-on of it cached or in a job (such a job then answers
    404; a running one is cancelled)."""
    await run_in_threadpool(service.delete_garment, user, clothing_id)
    return Response(status_code=204)
