"""CUDA smoke check of the engine on the tiny model: CUDA-graph steps equal eager steps, while
another thread runs the text encoders during the captures.

PYTHONPATH=src:. python bench/cuda_smoke.py
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import torch

from tests.helpers import random_image
from vton.engine.checkpoint import load_model
from vton.engine.optimize import EngineOptimizations
from vton.engine.pipeline import TryOnPipeline
from vton.engine.runtime import quiet_model_libraries
from vton.engine.text import PromptEncoder
from vton.engine.tiny import make_tiny_model
from vton.engine.types import DiffusionOptions, TryOnSample


def sample(i: int) -> TryOnSample:
    return TryOnSample(
        random_image(i),
        random_image(10 + i, mode="L"),
        random_image(20 + i),
        random_image(30 + i),
        description=f"garment {i}",
        seed=i,
    )


def encode_until(encoder: PromptEncoder, stop: threading.Event) -> None:
    while not stop.is_set():
        encoder.encode_garment("a shirt from another thread")


def main() -> None:
    quiet_model_libraries()
    path = make_tiny_model(Path(tempfile.mkdtemp()) / "tiny")
    options = DiffusionOptions(steps=4, height=128, width=96)
    batch = [sample(i) for i in range(3)]
    for dtype in (torch.float32, torch.float16):
        eager = TryOnPipeline(
            load_model(path, dtype, "cuda"), EngineOptimizations(cuda_graphs=False, compile=False)
        )
        graphed_model = load_model(path, dtype, "cuda")
        graphed = TryOnPipeline(graphed_model, EngineOptimizations(compile=False))
        encoder = PromptEncoder(graphed_model)
        stop = threading.Event()

        thread = threading.Thread(target=encode_until, args=(encoder, stop))
        thread.start()
        try:
            got = graphed(batch, options)
            again = graphed(batch, options)
        finally:
            stop.set()
            thread.join()
        expected = eager(batch, options)
        worst = max(
            float((a.image - b.image).abs().max()) for a, b in zip(got, expected, strict=True)
        )
        same = all(torch.equal(a.image, b.image) for a, b in zip(got, again, strict=True))
        print(
            f"{dtype}: graphs captured {len(graphed.graphs)}, graph vs eager max abs {worst:.2e}, "
            f"replay deterministic {same}"
        )
        assert worst < (1e-5 if dtype == torch.float32 else 2e-2) and same


if __name__ == "__main__":
    main()
