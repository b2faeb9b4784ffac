"""What several resources share: the camelCase base, try-on options, timings, errors."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from vton.engine.types import SchedulerName
from vton.service.tryon import TryOnOptions
from vton.store.ids import ID_PATTERN, MAX_ID_LENGTH

_B64 = "[A-Za-z0-9+/_-]"
BASE64_PATTERN = f"^(data:[^,]*,)?({_B64}{{4}})*({_B64}{{4}}|{_B64}{{2}}==|{_B64}{{3}}=)$"
"""What decode_base64 accepts: non-empty padded standard or URL-safe base64, optionally in a
data: URL."""

ClothingId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="A UUID or a slug: ASCII letters, digits, '_' and '-'.",
        examples=["shirt-01"],
        json_schema_extra={"pattern": ID_PATTERN},  # checked by check_id (its own messages)
    ),
]
ClothingIdPath = Annotated[
    str,
    Path(
        description="A UUID or a slug.",
        examples=["shirt-01"],
        json_schema_extra={"pattern": ID_PATTERN, "minLength": 1, "maxLength": MAX_ID_LENGTH},
    ),
]
Base64Image = Annotated[
    str,
    Field(
        min_length=1,
        description="A PNG, JPEG or WebP image, base64-encoded (a data: URL is accepted).",
        json_schema_extra={"pattern": BASE64_PATTERN},
    ),
]


class ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", serialize_by_alias=True
    )


class TryOnOptionsIn(ApiModel):
    """How to run the try-on and how to return the image."""

    # strict: a JSON `true` is not 1 step, `"yes"` is not a bool, `"42"` is not a seed
    denoise_steps: int = Field(20, ge=1, le=100, strict=True, description="Denoising steps.")
    seed: int = Field(42, ge=0, le=2**32 - 1, strict=True)
    guidance_scale: float = Field(2.0, ge=1.0, le=20.0, strict=True)
    scheduler: SchedulerName = "ddpm"
    paste_back: bool = Field(
        True,
        strict=True,
        description="Keep the person photo's own pixels outside the (feathered) mask.",
    )
    fit: Literal["original", "768x1024"] = Field(
        "768x1024",
        description="The working 3:4 frame, or the original photo's framing (undoing the fit).",
    )

    def options(self) -> TryOnOptions:
        return TryOnOptions(
            steps=self.denoise_steps,
            scheduler=self.scheduler,
            guidance_scale=self.guidance_scale,
            seed=self.seed,
            paste_back=self.paste_back,
            framing=self.fit,
        )


class Timings(ApiModel):
    """Milliseconds per phase: loading artifacts, waiting in the queue, the engine's encode,
    diffusion and decode, encoding the PNG, and the whole request."""

    artifacts: float = 0.0
    queue: float = 0.0
    encode: float = 0.0
    diffusion: float = 0.0
    decode: float = 0.0
    png: float = 0.0
    total: float = 0.0


class ErrorBody(BaseModel):
    error: str = Field(description="The error's type, e.g. NotRegistered.")
    detail: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (401, 404, 408, 409, 413, 422, 429, 500, 503, 504)
}
"""The error statuses every /api route may answer (see vton.api.errors)."""
