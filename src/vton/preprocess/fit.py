"""Framing a photo into the working frame (768 x 1024), and a result back into the photo's framing.

Two framings, each reproducing the system it comes from exactly (shared/reference/preprocess/
framing, SPEC §1):

- letterbox (the default; closzIT `api_server.py` L337-372): the aspect ratio is kept, the long
  side fills the frame (`768 x int(768/ar)` or `int(1024*ar) x 1024`, LANCZOS) and the rest is
  white, centred with `//2` offsets. Back: the photo's area cut out and resized to the photo.
- crop (the IDM-VTON demo's auto-crop, `gradio_demo/app.py` L135-147): the centred 3:4 crop
  (Pillow rounds the float box half-to-even) resized to 768 x 1024 (bicubic). Back (L236-238): the
  result resized to the crop's size and pasted into the original photo at the box's truncated
  corner, so this framing needs the photo itself.

Deviation: a transparent photo is composited on white (the originals convert RGBA to RGB, which
keeps the colour under transparent pixels).
"""

from __future__ import annotations

from typing import Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

WIDTH, HEIGHT = 768, 1024
WHITE = (255, 255, 255)
FitMode = Literal["letterbox", "crop"]


class Fit(BaseModel):
    """Where the original photo sits in the working frame: scaled by `scale`, then placed at
    (`offset_x`, `offset_y`) with size `fitted_width` x `fitted_height`; with `crop_box` (the
    crop framing) the photo's float box (left, top, right, bottom) that fills the frame."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    original_width: int = Field(gt=0)
    original_height: int = Field(gt=0)
    scale: float = Field(gt=0)
    offset_x: int = Field(ge=0)
    offset_y: int = Field(ge=0)
    fitted_width: int = Field(gt=0)
    fitted_height: int = Field(gt=0)
    crop_box: tuple[float, float, float, float] | None = None

    @property
    def mode(self) -> FitMode:
        return "letterbox" if self.crop_box is None else "crop"

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

    @property
    def crop_pixels(self) -> tuple[int, int, int, int]:
        """The crop box as Pillow's `crop` rounds it (half-to-even), in the photo's pixels."""
        if self.crop_box is None:
            raise ValueError("a letterbox fit has no crop box")
        left, top, right, bottom = (round(v) for v in self.crop_box)
        return left, top, right, bottom


def compute_fit(size: tuple[int, int], mode: FitMode = "letterbox") -> Fit:
    w, h = size
    if mode == "crop":
        return _crop_fit(w, h)
    ar = w / h
    if ar > WIDTH / HEIGHT:
        fitted_w, fitted_h = WIDTH, max(1, int(WIDTH / ar))
    else:
        fitted_w, fitted_h = max(1, int(HEIGHT * ar)), HEIGHT
    return Fit(
        original_width=w,
        original_height=h,
        scale=min(WIDTH / w, HEIGHT / h),
        offset_x=(WIDTH - fitted_w) // 2,
        offset_y=(HEIGHT - fitted_h) // 2,
        fitted_width=fitted_w,
        fitted_height=fitted_h,
    )


def _crop_fit(w: int, h: int) -> Fit:
    target_w, target_h = int(min(w, h * 3 / 4)), int(min(h, w * 4 / 3))
    left, top = (w - target_w) / 2, (h - target_h) / 2
    box = (left, top, (w + target_w) / 2, (h + target_h) / 2)
    return Fit(
        original_width=w,
        original_height=h,
        scale=WIDTH / target_w,
        offset_x=0,
        offset_y=0,
        fitted_width=WIDTH,
        fitted_height=HEIGHT,
        crop_box=box,
    )


def apply_fit(
    image: Image.Image,
    fit: Fit,
    fill: int | tuple[int, ...],
    resample: Image.Resampling | None = None,
) -> Image.Image:
    """`image` (of the fit's original size) in the working frame; letterbox padding is `fill`.
    `resample` defaults to the framing's own filter (LANCZOS letterbox, BICUBIC crop)."""
    if image.size != fit.original_size:
        raise ValueError(f"image is {image.size}, the fit is for {fit.original_size}")
    if fit.crop_box is not None:
        resample = Image.Resampling.BICUBIC if resample is None else resample
        return image.crop(fit.crop_box).resize((WIDTH, HEIGHT), resample)
    resample = Image.Resampling.LANCZOS if resample is None else resample
    canvas = Image.new(image.mode, (WIDTH, HEIGHT), fill)
    canvas.paste(image.resize((fit.fitted_width, fit.fitted_height), resample), fit.box[:2])
    return canvas


def undo_fit(image: Image.Image, fit: Fit, photo: Image.Image | None = None) -> Image.Image:
    """A result in the working frame back in the photo's framing. The crop framing pastes it
    into `photo` (the registered original), which it then requires."""
    if fit.crop_box is None:
        return image.crop(fit.box).resize(fit.original_size, Image.Resampling.LANCZOS)
    if photo is None or photo.size != fit.original_size:
        raise ValueError("the crop framing needs the original photo to paste the result into")
    left, top, right, bottom = fit.crop_pixels
    at = (int(fit.crop_box[0]), int(fit.crop_box[1]))  # truncated, unlike the crop's rounding
    canvas = to_rgb(photo)
    canvas.paste(image.resize((right - left, bottom - top), Image.Resampling.BICUBIC), at)
    return canvas


def to_rgb(photo: Image.Image) -> Image.Image:
    """An RGB copy of a photo; transparency becomes white, as padding does."""
    if photo.mode in ("RGBA", "LA") or (photo.mode == "P" and "transparency" in photo.info):
        rgba = photo.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*WHITE, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return photo.convert("RGB")


def fit_photo(photo: Image.Image, mode: FitMode = "letterbox") -> tuple[Image.Image, Fit]:
    """A photo in the working frame and its fit."""
    fit = compute_fit(photo.size, mode)
    rgb = photo if photo.mode == "RGB" else to_rgb(photo)  # apply_fit only reads it: no copy
    return apply_fit(rgb, fit, WHITE), fit
