"""PNG encoding of a 768 x 1024 try-on result: Pillow at compress level 1 (the baseline) against
vton.store.png.encode_png (parallel stripes), measured in the same run.

Run: PYTHONPATH=src:. python bench/png_bench.py [--photo PATH] [--write-results]
The photo is PATH, else the first .png/.jpg under /work/shared/reference/, else a synthetic one
(smooth shapes plus sensor-like noise); it is cropped and scaled to 768 x 1024. The noise image
(uniform random bytes) is the worst case for both encoders. `--write-results` replaces this
benchmark's section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from bench.harness import photo_like, write_section
from vton.store import png

REFERENCE = Path("/work/shared/reference")
SIZE = (768, 1024)
REPEATS = 7
NOTES = """
Reading it: the parallel encoder cuts the rows into min(threads, rows // 64) stripes, one thread
each, so on 2 CPUs it can at best halve its one-thread time (Up filter + zlib level 1: about 20 ms
for the photo, 36 ms for noise). It beats Pillow on one thread too: Pillow tries every filter on
every row and keeps the best (about half its time on noise, where none helps). On two real
720 x 477 photos scaled up (given by --photo) it took 10.9 and 15.5 ms against Pillow's 41 and
46 ms, for 1.06x and 1.12x Pillow's bytes; on noise both store the data (stored blocks)."""


def pillow_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def find_photo(path: Path | None) -> tuple[str, Image.Image]:
    """The photo to encode and a description of it."""
    if path is None and REFERENCE.is_dir():
        found = sorted(p for p in REFERENCE.rglob("*") if p.suffix.lower() in {".png", ".jpg"})
        path = found[0] if found else None
    if path is None:
        return "photo (synthetic: smooth + noise)", photo_like(0, SIZE)
    original = Image.open(path).convert("RGB")
    width, height = original.size
    image = ImageOps.fit(original, SIZE, Image.Resampling.BICUBIC)
    return f"photo ({path.name}, {width}x{height}, scaled)", image


def median_ms(encode: Callable[[Image.Image], bytes], image: Image.Image) -> tuple[float, int]:
    data = encode(image)  # warm-up
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        encode(image)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), len(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, help="a photo to use instead of the default")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    name, photo = find_photo(args.photo)
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8))
    machine = f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}"
    lines = [
        f"Machine: {machine}, Python {sys.version.split()[0]}; encoder threads: {png.THREADS}.",
        f"768 x 1024 RGB, median of {REPEATS} runs after a warm-up; ms and output bytes.",
        "",
        "| image | Pillow level 1 (baseline) | bytes | parallel encoder | bytes | speed-up |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, image in ((name, photo), ("noise", noise)):
        base_ms, base_bytes = median_ms(pillow_png, image)
        new_ms, new_bytes = median_ms(png.encode_png, image)
        lines.append(
            f"| {label} | {base_ms:.1f} | {base_bytes:,} | {new_ms:.1f} | {new_bytes:,}"
            f" ({new_bytes / base_bytes:.2f}x) | {base_ms / new_ms:.1f}x |"
        )
    table = "\n".join(lines) + "\n" + NOTES
    print(table)
    if args.write_results:
        command = "PYTHONPATH=src:. python bench/png_bench.py --write-results"
        write_section("png-bench", f"## PNG: encoding a try-on result\n\n`{command}`\n\n{table}\n")


if __name__ == "__main__":
    main()
