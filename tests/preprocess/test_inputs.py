"""Uploaded images: decoded upright, or refused with the argument's name."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.helpers import random_image
from vton.errors import ImageTooLarge, InvalidInput
from vton.preprocess.inputs import read_image


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def test_reads_common_formats() -> None:
    image = random_image(0, 40, 30)
    for fmt in ("PNG", "JPEG", "WEBP"):
        assert read_image(encoded(image, fmt), "--photo").size == (40, 30)


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: the upright image is 30 wide, 40 high
    data = encoded(random_image(0, 40, 30), "JPEG", exif=exif.tobytes())
    assert read_image(data, "--photo").size == (30, 40)


@pytest.mark.parametrize("data", [b"", b"not an image", encoded(random_image(1), "PNG")[:100]])
def test_unreadable_bytes_name_the_argument(data: bytes) -> None:
    with pytest.raises(InvalidInput, match="--photo: not a readable image"):
        read_image(data, "--photo")


def test_huge_images_are_refused_before_decoding() -> None:
    data = encoded(Image.new("L", (10_000, 6_000)), "PNG")
    with pytest.raises(ImageTooLarge, match="--photo: 10000x6000 is over 16777216 pixels"):
        read_image(data, "--photo")
