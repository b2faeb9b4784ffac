"""What a job asks beyond its try-on: how its images are returned, its deadline, its webhook and
its idempotency key (JobSpec); and each result image encoded as asked, from the finished PNG.

The service makes, caches and stores PNGs only (the result cache's key has no format): a JPEG or
WebP is encoded from that PNG when it is read, so the same cached PNG serves every format and
a PNG is returned byte for byte. Encodings are kept a while per job item (EncodedResults): at
768 x 1024 a JPEG takes ~25 ms, a WebP ~150 ms, too much to repeat on every poll.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Literal

from PIL import Image

from vton.cache.lru import Lru

ResponseFormat = Literal["url", "base64"]
OutputFormat = Literal["png", "jpeg", "webp"]
ENCODED_CACHE_BYTES = 64 * 2**20
MEDIA_TYPES: dict[OutputFormat, str] = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
}


@dataclass(frozen=True)
class JobOutput:
    """How a job's images are returned."""

    response_format: ResponseFormat = "base64"
    """base64: GET /api/jobs/{id} carries each image inline as well as its URL; url: only the
    URL. Events and webhooks carry URLs only."""
    output_format: OutputFormat = "png"
    output_quality: int = 90
    """JPEG and WebP quality, 1-100 (PNG is lossless)."""

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.output_format]

    def encode(self, png: bytes) -> bytes:
        """The finished PNG in the asked format (the PNG itself for png). May take tens of
        milliseconds: call it from a thread."""
        if self.output_format == "png":
            return png
        with Image.open(io.BytesIO(png)) as image:
            rgb = image.convert("RGB")
        out = io.BytesIO()
        if self.output_format == "jpeg":
            rgb.save(out, format="JPEG", quality=self.output_quality, optimize=True)
        else:
            rgb.save(out, format="WEBP", quality=self.output_quality, method=4)
        return out.getvalue()


class EncodedResults:
    """Job items' images in their job's format, by (job id, index): each is encoded once while
    it stays in the byte-bounded memory. Thread-safe."""

    def __init__(self, max_bytes: int = ENCODED_CACHE_BYTES) -> None:
        self._memory: Lru[tuple[str, int], bytes] = Lru(max_bytes, size=len)

    def encode(self, job_id: str, output: JobOutput, index: int, png: bytes) -> bytes:
        """JobOutput.encode, remembered (a job's output never changes)."""
        if output.output_format == "png":
            return png
        encoded = self._memory.get((job_id, index))
        if encoded is None:
            encoded = output.encode(png)
            self._memory.put((job_id, index), encoded)
        return encoded


@dataclass(frozen=True)
class Idempotency:
    """A submission's Idempotency-Key and the digest of its body."""

    key: str
    digest: str


@dataclass(frozen=True)
class JobSpec:
    """A job submission's own options (the try-on's are TryOnOptions)."""

    output: JobOutput
    timeout_s: float
    """From submission to the job's deadline."""
    webhook_url: str | None = None
    idempotency: Idempotency | None = None
    base_url: str = ""
    """The API's own address as the client reached it (absolute URLs in webhooks)."""
