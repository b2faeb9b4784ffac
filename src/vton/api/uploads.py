"""Reading what clients upload: base64 fields and the v1 multipart form."""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Annotated

from fastapi import File, Form, UploadFile
from starlette.concurrency import run_in_threadpool

from vton.api.schemas.common import TryOnOptionsIn
from vton.engine.types import SchedulerName
from vton.errors import InvalidInput
from vton.preprocess.inputs import check_min_side
from vton.service.finish import Framing
from vton.service.tryon import InlineImages, TryOn, TryOnOptions
from vton.store.ids import Category

if TYPE_CHECKING:
    from vton.service import Service


def decode_base64(value: str, what: str) -> bytes:
    """The bytes of a base64 field (standard or URL-safe alphabet, data: URL accepted)."""
    if value.startswith("data:"):
        value = value.partition(",")[2]
    try:
        data = base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"{what}: not valid base64 ({exc})") from None
    if not data:
        raise InvalidInput(f"{what}: empty")
    return data


class InlineForm:
    """The v1 request: four images, the garment's description and category, and the options
    (the same names and bounds as the JSON requests)."""

    def __init__(
        self,
        person: Annotated[UploadFile, File(description="The person photo.")],
        mask: Annotated[UploadFile, File(description="The area to repaint, white.")],
        pose: Annotated[UploadFile, File(description="The DensePose image.")],
        garment: Annotated[UploadFile, File(description="The garment photo.")],
        description: Annotated[str, Form(min_length=1, max_length=1000)],
        category: Annotated[Category, Form()] = Category.UPPER_BODY,
        denoise_steps: Annotated[int, Form(alias="denoiseSteps", ge=1, le=100)] = 20,
        seed: Annotated[int, Form(ge=0, le=2**32 - 1)] = 42,
        guidance_scale: Annotated[float, Form(alias="guidanceScale", ge=1.0, le=20.0)] = 2.0,
        scheduler: Annotated[SchedulerName, Form()] = "ddpm",
        paste_back: Annotated[bool, Form(alias="pasteBack")] = True,
        fit: Annotated[Framing, Form()] = "768x1024",
    ) -> None:
        self.files = {"person": person, "mask": mask, "pose": pose, "garment": garment}
        self.description = description
        self.category = category
        self.options: TryOnOptions = TryOnOptionsIn(
            denoise_steps=denoise_steps,
            seed=seed,
            guidance_scale=guidance_scale,
            scheduler=scheduler,
            paste_back=paste_back,
            fit=fit,
        ).options()

    async def submit(self, service: Service, user_id: str, asynchronous: bool) -> TryOn:
        """The try-on submitted, its images decoded and fitted under the decode budget
        (InvalidInput names the part that is not an image; Busy when the budget is taken)."""
        uploads = {name: await upload.read() for name, upload in self.files.items()}

        def decode_and_submit() -> TryOn:
            with service.catalog.uploads.decoded(uploads) as decoded:
                for name in ("person", "garment"):
                    check_min_side(decoded[name], name)
                images = InlineImages(
                    description=self.description, category=self.category, **decoded
                )
                return service.tryons.submit_inline(user_id, images, self.options, asynchronous)

        return await run_in_threadpool(decode_and_submit)
