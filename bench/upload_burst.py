"""Peak server memory under a burst of large uploads (issue 19): 50 concurrent clients each
upload one one-colour photo to a real uvicorn server (tiny model, CPU, local store), first
7000 x 7000 (over VTON_MAX_IMAGE_PIXELS: refused from the header) as a person, then
4096 x 4096 (at the cap: decoded under VTON_DECODE_MEMORY_BYTES) as a garment. Reports the
statuses and the process's RSS before, at its peak during, and after each burst.

    PYTHONPATH=src:. python bench/upload_burst.py

The server runs in this process (the clients' share of RSS is their 50 request bodies, under
40 MB), so the RSS is the server's plus that.
"""

from __future__ import annotations

import asyncio
import base64
import io
import tempfile
import threading
from collections import Counter
from pathlib import Path

import httpx
from PIL import Image

from tests.api.live import LiveServer, make_settings
from vton.engine.tiny import make_tiny_model
from vton.preprocess.body.standins import write_standins

CLIENTS = 50
MiB = 2**20


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def one_colour_png(side: int) -> str:
    out = io.BytesIO()
    Image.new("RGB", (side, side), (200, 30, 30)).save(out, "PNG", compress_level=1)
    return base64.b64encode(out.getvalue()).decode()


class PeakRss:
    """Samples RSS every 10 ms while in the block."""

    def __enter__(self) -> PeakRss:
        self.before = self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.after = rss_bytes()


async def burst(server: LiveServer, method: str, path: str, body: dict) -> Counter[int]:
    async def one(i: int) -> int:
        headers = {"Authorization": f"Bearer {server.token(f'burst-{i}')}"}
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
            return (await client.request(method, path, json=body, headers=headers)).status_code

    return Counter(await asyncio.gather(*(one(i) for i in range(CLIENTS))))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        model = make_tiny_model(Path(tmp) / "model")
        write_standins(model / "ckpt")
        settings = make_settings(model, Path(tmp), max_upload_bytes=16 * MiB)
        server = LiveServer(settings).start()
        try:
            print(
                f"max_image_pixels={settings.max_image_pixels} "
                f"decode_memory_bytes={settings.decode_memory_bytes // MiB} MiB, {CLIENTS} clients"
            )
            runs = [
                ("PUT", "/api/person", {"image": one_colour_png(7000)}, "7000x7000 person"),
                (
                    "POST",
                    "/api/clothing",
                    {
                        "image": one_colour_png(4096),
                        "description": "a top",
                        "category": "upper_body",
                    },
                    "4096x4096 garment",
                ),
            ]
            for method, path, body, name in runs:
                with PeakRss() as rss:
                    statuses = asyncio.run(burst(server, method, path, body))
                mib = [value // MiB for value in (rss.before, rss.peak, rss.after)]
                print(
                    f"{name}: statuses {dict(sorted(statuses.items()))}; RSS MiB before "
                    f"{mib[0]}, peak {mib[1]}, after {mib[2]}"
                )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
