"""A user's person and garments."""

from __future__ import annotations

from datetime import datetime

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
    image: Base64Image = Field(description="The person photo, any aspect ratio (fitted to 3:4).")
    masks: dict[Category, Base64Image] = Field(
        min_length=1,
        description="Per category, the area to repaint (white), the photo's size or 768x1024.",
    )
    pose: Base64Image = Field(description="The DensePose image, the photo's size or 768x1024.")


class PersonInfo(ApiModel):
    version: str
    categories: list[Category]
    fit: FitOut | None
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
