"""Checking the images a caller hands to registration; every error names the argument."""

from __future__ import annotations

import warnings
from io import BytesIO

from PIL import Image, ImageOps, UnidentifiedImageError

from vton.errors import ImageTooLarge, InvalidInput
from vton.preprocess.fit import HEIGHT, WIDTH

MAX_PIXELS = 4096 * 4096
"""Pixels an image may have at most (VTON_MAX_IMAGE_PIXELS): the 768 x 1024 working frame
with ample headroom; refuses decompression bombs before decoding."""
MIN_IMAGE_SIDE = 64
"""Pixels an image must have at least a side: no model reads a person or a garment off fewer."""
MASK_MODES = ("1", "L")
POSE_MODES = ("RGB",)
MASK_FLATTENED = ("LA", "P", "PA")
POSE_FLATTENED = ("RGBA", "P", "PA")
"""Modes converted before the mode check: a palette through its colours, an alpha band
composited on black (a mask's transparent pixels are kept, a DensePose image's are background).
An RGB(A) mask stays refused: which band is the mask would be a guess."""


def flatten_on_black(image: Image.Image, flattened: tuple[str, ...], mode: str) -> Image.Image:
    """`image` in `mode` if its mode is one of `flattened`, else `image` itself."""
    if image.mode not in flattened:
        return image
    rgba = image.convert("RGBA")
    black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
    return Image.alpha_composite(black, rgba).convert(mode)


def open_image(data: bytes, what: str, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The upload opened, its header read and nothing decoded; ImageTooLarge over
    `max_pixels`, InvalidInput when it is no image."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageTooLarge(f"{what}: too many pixels ({e})") from None
    except UnidentifiedImageError:  # its message shows the BytesIO's repr
        raise InvalidInput(f"{what}: not a readable image (no image format recognised)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise InvalidInput(f"{what}: not a readable image ({e})") from e
    if image.width * image.height > max_pixels:
        raise ImageTooLarge(f"{what}: {image.width}x{image.height} is over {max_pixels} pixels")
    return image


def check_min_side(image: Image.Image, what: str) -> None:
    """InvalidInput when a person photo or garment image is under MIN_IMAGE_SIDE a side."""
    if min(image.size) < MIN_IMAGE_SIDE:
        raise InvalidInput(
            f"{what}: {image.width}x{image.height} is too small "
            f"(at least {MIN_IMAGE_SIDE} px a side)"
        )


def read_image(data: bytes, what: str, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decodes an uploaded image (PNG, JPEG, WebP, ...), upright per its EXIF orientation;
    ImageTooLarge over `max_pixels` (checked from the header, before decoding)."""
    image = open_image(data, what, max_pixels)
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as e:
        raise InvalidInput(f"{what}: not a readable image ({e})") from e
    ImageOps.exif_transpose(image, in_place=True)  # not a copy of a buffer that may be 64 MB
    return image


def check_companion(
    image: Image.Image, what: str, modes: tuple[str, ...], photo_size: tuple[int, int]
) -> bool:
    """Checks a mask or DensePose image against its photo. It must be the photo's size (then it
    is fitted like the photo: returns True) or already the working size (returns False)."""
    if image.mode not in modes:
        raise InvalidInput(f"{what}: mode {image.mode!r}, expected one of {', '.join(modes)}")
    if image.size == photo_size:
        return True
    if image.size == (WIDTH, HEIGHT):
        return False
    raise InvalidInput(
        f"{what}: size {image.width}x{image.height}, expected the photo's "
        f"{photo_size[0]}x{photo_size[1]} or {WIDTH}x{HEIGHT}"
    )


def check_description(description: object) -> str:
    if not isinstance(description, str) or not description.strip():
        raise InvalidInput("description: must be a non-empty string")
    if len(description) > 1000:
        raise InvalidInput(f"description: longer than 1000 characters ({len(description)})")
    return description.strip()
