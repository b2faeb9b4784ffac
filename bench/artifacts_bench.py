"""Gathering one try-on's artifacts: cold from S3 (moto on loopback), from the disk cache (L2),
warm from memory (L1); one garment and a batch of 10; parallel (the default pool) against
sequential (a pool of one: the baseline), measured in the same run.

Run: PYTHONPATH=src:. python bench/artifacts_bench.py [--latency-ms 20] [--write-results]
`--latency-ms` adds a server-side delay to every GET, as a remote S3 has. `--write-results`
replaces this benchmark's section of bench/RESULTS.md. Images are photo-like (smooth plus
noise) 768 x 1024 PNGs; text embeddings have the real model's shapes in float32.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image

from bench.harness import photo_like, write_section
from tests.s3_server import S3_ENV, S3TestServer, make_s3_store
from vton.cache import TieredCache
from vton.engine.types import TextEmbeddings
from vton.preprocess import ArtifactLoader, register_garment, register_person
from vton.store import Store

GARMENTS = [f"garment-{i}" for i in range(10)]
REPEATS = 5
NOTES = """
Reading it: "cold" is a new memory cache and no disk cache; "from L2" a new memory cache over a
warm disk cache. Every gather first reads the manifests (the person's and each garment's, in one
parallel round) to learn the current versions, so "warm L1" still costs one round trip to the
store: the price of never serving a re-registered person stale. At 0 ms the figures are CPU-bound
(PNG and safetensors decoding, and moto serving from the same process, on 2 cores), so the pool
helps little; with a per-GET latency, as a remote S3 has, the loads overlap (cold, 1 garment: 2
rounds of latency instead of 8)."""


class RealShapeEncoder:
    """Text embeddings of the real model's shapes (77 x 2048, 1280), random values."""

    def encode_garment(self, description: str) -> TextEmbeddings:
        g = torch.Generator().manual_seed(len(description))
        return TextEmbeddings(
            torch.randn(77, 2048, generator=g),
            torch.randn(77, 2048, generator=g),
            torch.randn(1280, generator=g),
            torch.randn(1280, generator=g),
            torch.randn(77, 2048, generator=g),
        )


def register(store: Store) -> None:
    mask = Image.new("L", (768, 1024), 0)
    mask.paste(255, (100, 150, 668, 600))
    register_person(store, "u1", photo_like(0), {"upper_body": mask}, photo_like(1))
    for i, clothing_id in enumerate(GARMENTS):
        register_garment(
            store,
            RealShapeEncoder(),
            "u1",
            clothing_id,
            photo_like(10 + i),
            f"shirt {i}",
            "upper_body",
        )


def median_ms(run: Callable[[], None], setup: Callable[[], None] = lambda: None) -> float:
    times = []
    for _ in range(REPEATS):
        setup()
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


class Gatherer:
    """One loader at a time, replaced by `fresh` (a new L1, with or without a disk cache)."""

    def __init__(self, store: Store, cache_dir: Path, workers: int) -> None:
        self.store, self.cache_dir, self.workers = store, cache_dir, workers
        self.loader: ArtifactLoader | None = None

    def fresh(self, with_l2: bool) -> None:
        self.close()
        cache = TieredCache.create(4 << 30, (8 << 30) if with_l2 else 0, self.cache_dir)
        self.loader = ArtifactLoader(self.store, cache, self.workers)

    def forget_l1(self) -> None:
        assert self.loader is not None
        self.loader.cache.l1.clear()

    def close(self) -> None:
        if self.loader is not None:
            self.loader.close()


def measure(store: Store, cache_dir: Path, workers: int) -> dict[str, float]:
    """Cold (new L1, no L2), L2 (new L1, warm disk cache), warm L1, for 1 and 10 garments."""
    results = {}
    gatherer = Gatherer(store, cache_dir, workers)
    for label, ids in (("1 garment", GARMENTS[:1]), ("10 garments", GARMENTS)):

        def gather(ids: list[str] = ids) -> None:
            assert gatherer.loader is not None
            gatherer.loader.gather("u1", ids)

        results[f"cold from S3, {label}"] = median_ms(gather, lambda: gatherer.fresh(False))
        gatherer.fresh(True)
        gather()  # fills the disk cache
        results[f"from L2 (disk), {label}"] = median_ms(gather, gatherer.forget_l1)
        results[f"warm L1, {label}"] = median_ms(gather)
    gatherer.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, nargs="*", default=[0.0, 20.0])
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    os.environ.update({k: os.environ.get(k, v) for k, v in S3_ENV.items()})
    server = S3TestServer()
    server.start()
    store = make_s3_store(server, max_connections=32)
    register(store)
    root = "users/u1/vton-cache/"
    mb = {k.removeprefix(root): len(store.get(k)) / 1e6 for k in store.list(root)}
    machine = f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}"
    lines = [
        f"Machine: {machine}, Python {sys.version.split()[0]}; S3 = moto server on 127.0.0.1.",
        f"Objects: person photo {mb['upper/human_img.png']:.1f} MB, garment photo"
        f" {mb['garments/garment-0_img.png']:.1f} MB, text {mb['text/garment-0.safetensors']:.1f}"
        f" MB (PNG, safetensors). Median of {REPEATS} runs, milliseconds.",
        "",
        "| GET latency | measure | sequential (1 worker: baseline) | parallel (16) | speed-up |",
        "| --- | --- | --- | --- | --- |",
    ]
    for latency in args.latency_ms:
        server.delay_s = latency / 1000
        with tempfile.TemporaryDirectory() as folder:
            sequential = measure(store, Path(folder) / "seq", workers=1)
            parallel = measure(store, Path(folder) / "par", workers=16)
        for name in sequential:
            s, p = sequential[name], parallel[name]
            lines.append(f"| {latency:.0f} ms | {name} | {s:.1f} | {p:.1f} | {s / p:.1f}x |")
    server.stop()
    table = "\n".join(lines) + "\n" + NOTES
    print(table)
    if args.write_results:
        command = "PYTHONPATH=src:. python bench/artifacts_bench.py --write-results"
        write_section(
            "artifacts-bench",
            f"## Artifacts: gathering a try-on's inputs\n\n`{command}`\n\n{table}\n",
        )


if __name__ == "__main__":
    main()
