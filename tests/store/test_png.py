"""The parallel PNG encoder: standard PNGs that decode to the very pixels, of a sane size."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from vton.store import png
from vton.store.png import encode_png

pytestmark = pytest.mark.timeout(60)

BANDS = {"L": 1, "RGB": 3, "RGBA": 4}


def noise(mode: str, width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    shape = (height, width, BANDS[mode]) if mode != "L" else (height, width)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode)


def photo_like(mode: str = "RGB", width: int = 768, height: int = 1024) -> Image.Image:
    """A gradient plus a little noise, as a real photo's rows look to a PNG filter."""
    y, x = np.mgrid[0:height, 0:width]
    channels = [(x * 255 // width + y * 255 // height) // 2, x * 255 // width, y * 255 // height]
    channels.append(255 - channels[0])
    gradient = np.stack(channels[: BANDS[mode]], axis=-1).squeeze()
    jitter = np.random.default_rng(1).integers(-3, 4, gradient.shape)
    return Image.fromarray((gradient + jitter).clip(0, 255).astype(np.uint8), mode=mode)


def decode(data: bytes) -> Image.Image:
    Image.open(io.BytesIO(data)).verify()
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    image.load()
    return image


def assert_round_trip(image: Image.Image) -> bytes:
    data = encode_png(image)
    back = decode(data)
    assert back.mode == image.mode and back.size == image.size
    assert np.array_equal(np.asarray(back), np.asarray(image))
    return data


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
@pytest.mark.parametrize(
    "size",
    [(1, 1), (7, 1), (1, 9), (333, 130), (64, 128), (129, 1001), (768, 1024)],
    ids=lambda s: f"{s[0]}x{s[1]}",
)
def test_noise_round_trips(mode: str, size: tuple[int, int]) -> None:
    assert_round_trip(noise(mode, *size))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_photo_like_and_constant_images_round_trip(mode: str) -> None:
    assert_round_trip(photo_like(mode))
    assert_round_trip(Image.new(mode, (768, 1024), 200))


def test_stripes_that_do_not_divide_the_height(monkeypatch: pytest.MonkeyPatch) -> None:
    """More stripes than this machine has cores, over a height that 7 does not divide."""
    monkeypatch.setattr(png, "THREADS", 7)
    data = assert_round_trip(noise("RGB", 50, 7 * 64 + 5))
    assert data.count(b"IDAT") == 7


@pytest.mark.parametrize("mode", ["P", "I;16", "LA", "1"])
def test_other_modes_go_to_pillow(mode: str) -> None:
    image = noise("L", 45, 70).convert(mode) if mode != "I;16" else Image.new(mode, (45, 70), 999)
    assert_round_trip(image)


@pytest.mark.parametrize("image", [noise("RGB", 100, 300), Image.new("RGBA", (500, 400), 255)])
def test_chunks_are_well_formed(image: Image.Image, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(png, "THREADS", 4)
    data = encode_png(image)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, kinds, stream = 8, [], b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + body)
        kinds.append(kind)
        stream += body if kind == b"IDAT" else b""
        offset += 12 + length
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and set(kinds[1:-1]) == {b"IDAT"}
    assert kinds.count(b"IDAT") == 4
    rows = zlib.decompress(stream)  # which checks the adler32 too
    assert len(rows) == image.height * (image.width * len(image.mode) + 1)


def test_size_is_close_to_pillows() -> None:
    image = photo_like()
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    assert len(assert_round_trip(image)) <= 1.3 * len(buffer.getvalue())


def test_adler32_combines_like_zlibs() -> None:
    data = np.random.default_rng(2).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    for split in (0, 1, 5552, 65521, 100_000, 300_000):
        first, second = zlib.adler32(data[:split]), zlib.adler32(data[split:])
        combined = png._adler32_combine(first, second, len(data) - split)
        assert combined == zlib.adler32(data)


@pytest.mark.parametrize("mode", ["RGB", "L", "P"])
def test_text_goes_into_text_chunks(mode: str) -> None:
    image = noise("RGB", 96, 160, seed=9).convert(mode)
    decoded = decode(encode_png(image, {"vton-version": "abc123", "k": "v"}))
    assert decoded.text == {"vton-version": "abc123", "k": "v"}
    assert decoded.mode == image.mode and decoded.tobytes() == image.tobytes()
