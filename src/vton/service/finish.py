"""The quality guards applied to an engine image before it is returned: paste-back and framing.

pasteBack: outside the mask, feathered over a few pixels, the result keeps the person photo's own
pixels, so face, skin and background never drift. Framing: the working frame (768 x 1024 by
default) or the original photo's framing, undoing the fit recorded at registration. The workers'
post-process (tryon.post_process) applies them before the image's only PNG encode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageFilter

from vton.preprocess import Fit, undo_fit
from vton.preprocess.fit import HEIGHT, WIDTH

Framing = Literal["original", "768x1024"]
FEATHER_FRACTION = 1 / 192
"""Feather radius as a fraction of the image width: 4 px at 768."""


@dataclass(frozen=True)
class Finish:
    """How one item's image is returned. `person` and `mask` are in the working frame; `photo`
    is the registered original, which the crop framing's way back needs."""

    person: Image.Image
    mask: Image.Image
    fit: Fit | None
    paste_back: bool
    framing: Framing
    photo: Image.Image | None = None

    @property
    def original_fit(self) -> Fit | None:
        """The fit to undo: only for the original framing of a photo whose fit is recorded."""
        return self.fit if self.framing == "original" else None

    @property
    def key(self) -> str:
        """The options as a short stable description, for the result cache's key."""
        return f"paste_back={int(self.paste_back)};framing={self.framing}"

    def apply(self, image: Image.Image) -> Image.Image:
        """The engine's image finished: the same image when nothing applies."""
        fit = self.original_fit
        if not self.paste_back and fit is None:
            return image
        image = image.convert("RGB")
        if self.paste_back:
            image = paste_back(image, self.person, self.mask)
        if fit is not None:
            image = undo_fit(
                image.resize((WIDTH, HEIGHT), Image.Resampling.LANCZOS), fit, self.photo
            )
        return image


def feathered(mask: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The binary mask at `size`, its edge blurred by FEATHER_FRACTION of the width."""
    binary = mask.convert("L").resize(size, Image.Resampling.NEAREST)
    binary = binary.point(lambda v: 255 if v >= 128 else 0)
    return binary.filter(ImageFilter.GaussianBlur(max(1.0, size[0] * FEATHER_FRACTION)))


def paste_back(result: Image.Image, person: Image.Image, mask: Image.Image) -> Image.Image:
    """`result` inside the (feathered) mask, the person photo's pixels outside it."""
    photo = person.convert("RGB")
    if photo.size != result.size:
        photo = photo.resize(result.size, Image.Resampling.LANCZOS)
    return Image.composite(result, photo, feathered(mask, result.size))
