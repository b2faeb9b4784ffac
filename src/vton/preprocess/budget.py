"""How many uploaded pixels may be decoded at once: a byte budget shared by every request.

A request counts its images' decoded size from their headers (nothing decoded yet), waits a
short time for that many bytes, decodes and fits while it holds them, and gives them back when
its decoded images are dropped. A request that does not get its bytes in time is Busy (429 +
Retry-After); one that could never fit in the whole budget is ImageTooLarge (413).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from PIL import Image

from vton.errors import Busy, ImageTooLarge
from vton.preprocess.inputs import open_image, read_image

BYTES_PER_PIXEL = 10
"""Bytes counted per uploaded pixel, whatever its mode: the decoded buffer (Pillow keeps RGB at 4
bytes a pixel), fitting's working images, and the allocator's slack. With the EXIF transpose in
place, no RGB copy of an RGB photo and the freed memory returned (return_freed_memory), 50
concurrent 4096 x 4096 garment uploads grew RSS by ~0.5 GB against the 1 GiB budget (at most 6
decoded at once; bench/reliability_bench.py); before those, by 0.9-1.7 GB, and it stayed."""


def _malloc_trim() -> object:
    """glibc's malloc_trim, or None where the C library has none (musl, macOS)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _malloc_trim()


def return_freed_memory() -> None:
    """Hands the memory malloc holds free back to the system. Without it glibc keeps the freed
    image buffers in its per-thread arenas: RSS stayed ~0.5-0.9 GB up after a burst of uploads,
    and rose past the budget as later uploads did not reuse them (bench/reliability_bench.py)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)  # type: ignore[operator]


def decoded_bytes(data: bytes, what: str, max_pixels: int) -> int:
    """The decoded size of an upload, from its header alone; ImageTooLarge over `max_pixels`."""
    with open_image(data, what, max_pixels) as image:
        return image.width * image.height * BYTES_PER_PIXEL


class DecodeBudget:
    def __init__(self, capacity_bytes: int, max_pixels: int, wait_s: float = 1.0) -> None:
        """`capacity_bytes` of decoded images at once, `max_pixels` per image; a request waits
        at most `wait_s` for its share."""
        self.capacity_bytes = capacity_bytes
        self.max_pixels = max_pixels
        self.wait_s = wait_s
        self.in_use_bytes = 0
        self._freed = threading.Condition()

    @contextmanager
    def hold(self, n_bytes: int) -> Iterator[None]:
        """`n_bytes` of the budget while the block runs (Busy when not free within wait_s)."""
        if n_bytes > self.capacity_bytes:
            raise ImageTooLarge(
                f"the images decode to {n_bytes} bytes, over the decode budget "
                f"({self.capacity_bytes} bytes)"
            )
        with self._freed:
            if not self._freed.wait_for(
                lambda: self.in_use_bytes + n_bytes <= self.capacity_bytes, self.wait_s
            ):
                raise Busy("too many images are being decoded; try again", self.wait_s)
            self.in_use_bytes += n_bytes
        try:
            yield
        finally:
            return_freed_memory()  # before the bytes return: the next holder's images reuse it
            with self._freed:
                self.in_use_bytes -= n_bytes
                self._freed.notify_all()

    @contextmanager
    def decoded(self, uploads: Mapping[str, bytes]) -> Iterator[dict[str, Image.Image]]:
        """The uploads decoded (read_image, by name) while their bytes are held; the decoded
        images are dropped on leaving, so fit or copy what is kept inside the block."""
        cap = self.max_pixels
        with self.hold(sum(decoded_bytes(data, name, cap) for name, data in uploads.items())):
            images = {name: read_image(data, name, cap) for name, data in uploads.items()}
            try:
                yield images
            finally:
                images.clear()  # the last references: the buffers go before the bytes return
