"""Fitting a photo into the working frame (768 x 1024): keep the aspect ratio, pad the rest.

The fit is recorded so a result in the working frame can be mapped back to the photo's framing.
"""

from __future__ import annotations

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

WIDTH, HEIGHT = 768, 1024
WHITE = (255, 255, 255)


class Fit(BaseModel):
    """Where the original photo sits in the working frame: scaled by `scale`, then placed at
    (`offset_x`, `offset_y`) with size `fitted_width` x `fitted_height`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    original_width: int = Field(gt=0)
    original_height: int = Field(gt=0)
    scale: float = Field(gt=0)
    offset_x: int = Field(ge=0)
    offset_y: int = Field(ge=0)
    fitted_width: int = Field(gt=0)
    fitted_height: int = Field(gt=0)

    @property
    def original_size(self) -> tuple[int, int]:
        return self.original_width, self.original_height

    @property
    def box(self) -> tuple[int, int, int, int]:
        """The photo's area in the working frame (left, top, right, bottom)."""
        return (
            self.offset_x,
            self.offset_y,
            self.offset_x + self.fitted_width,
            self.offset_y + self.fitted_height,
        )


def compute_fit(size: tuple[int, int], width: int = WIDTH, height: int = HEIGHT) -> Fit:
    w, h = size
    scale = min(width / w, height / h)
    fitted_w = min(width, max(1, round(w * scale)))
    fitted_h = min(height, max(1, round(h * scale)))
    return Fit(
        original_width=w,
        original_height=h,
        scale=scale,
        offset_x=(width - fitted_w) // 2,
        offset_y=(height - fitted_h) // 2,
        fitted_width=fitted_w,
        fitted_height=fitted_h,
    )


def apply_fit(
    image: Image.Image,
    fit: Fit,
    fill: int | tuple[int, ...],
    resample: Image.Resampling = Image.Resampling.LANCZOS,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Image.Image:
    """`image` (of the fit's original size) scaled into a `width` x `height` canvas of `fill`."""
    if image.size != fit.original_size:
        raise ValueError(f"image is {image.size}, the fit is for {fit.original_size}")
    canvas = Image.new(image.mode, (width, height), fill)
    canvas.paste(image.resize((fit.fitted_width, fit.fitted_height), resample), fit.box[:2])
    return canvas


def undo_fit(image: Image.Image, fit: Fit) -> Image.Image:
    """A result in the working frame cut back to the photo's area and size."""
    return image.crop(fit.box).resize(fit.original_size, Image.Resampling.LANCZOS)


def to_rgb(photo: Image.Image) -> Image.Image:
    """An RGB copy of a photo; transparency becomes white, as padding does."""
    if photo.mode in ("RGBA", "LA") or (photo.mode == "P" and "transparency" in photo.info):
        rgba = photo.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*WHITE, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return photo.convert("RGB")


def fit_photo(photo: Image.Image) -> tuple[Image.Image, Fit]:
    """A photo in the working frame on white, and its fit."""
    fit = compute_fit(photo.size)
    return apply_fit(to_rgb(photo), fit, WHITE), fit
