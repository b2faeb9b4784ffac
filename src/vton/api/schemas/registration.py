"""A user's person and garments."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from vton.api.schemas.common import ApiModel, Base64Image, ClothingId
from vton.store.ids import Category


class FitOut(ApiModel):
    """Where the original photo sits in the working 768 x 1024 frame."""

    original_width: int
    original_height: int
    scale: float
    offset_x: int
    offset_y: int
    fitted_width: int
    fitted_height: int


class PersonRegistration(ApiModel):
    image: Base64Image = Field(description="The person photo, any aspect ratio (framed to 3:4).")
    masks: dict[Category, Base64Image] | None = Field(
        None,
        min_length=1,
        description="Optional: per category, the area to repaint (white), the photo's size or "
        "768x1024. Absent: computed from the photo for every category.",
    )
    pose: Base64Image | None = Field(
        None,
        description="Optional: the DensePose image, the photo's size or 768x1024. Absent: "
        "computed from the photo.",
    )
    framing: Literal["letterbox", "crop"] = Field(
        "letterbox",
        description="letterbox: the whole photo, padded white to 3:4; crop: the centred 3:4 "
        "crop (the IDM-VTON demo's auto-crop).",
    )


class DetectionOut(ApiModel):
    """What person preprocessing found in the photo."""

    people: int = Field(description="People found; the largest one was used.")
    computed: list[str] = Field(description='What was computed: "masks", "pose".')


class PersonInfo(ApiModel):
    version: str
    categories: list[Category]
    fit: FitOut | None
    framing: Literal["letterbox", "crop"] | None
    detection: DetectionOut | None = Field(
        None, description="Absent when the masks and the pose were uploaded."
    )
    warnings: list[str] = Field(default_factory=list)
    created_at: datetime


class ClothingRegistration(ApiModel):
    clothing_id: ClothingId | None = Field(None, description="Chosen by the server when absent.")
    image: Base64Image
    description: str = Field(min_length=1, max_length=1000, examples=["a red t-shirt"])
    category: Category


class ClothingInfo(ApiModel):
    clothing_id: str
    category: Category
    description: str
    version: str
    created_at: datetime


class ClothingList(ApiModel):
    items: list[ClothingInfo]


class WarmupRequest(ApiModel):
    clothing_ids: list[ClothingId] = Field(min_length=1, max_length=100)
    category: Category | None = None


class WarmupResponse(ApiModel):
    loaded: int = Field(description="Garments loaded, with the person.")
    milliseconds: float
