"""The engine's CUDA graphs on the tiny model: graphed steps equal eager ones, replays are
deterministic, and another thread using the GPU during the captures (garment registration runs
the text encoders) neither breaks nor enters them."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from tests.helpers import random_image
from vton.engine.checkpoint import load_model
from vton.engine.optimize import EngineOptimizations
from vton.engine.pipeline import TryOnPipeline
from vton.engine.text import PromptEncoder
from vton.engine.types import DiffusionOptions, TryOnSample

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
OPTIONS = DiffusionOptions(steps=4, height=128, width=96)


def sample(i: int) -> TryOnSample:
    return TryOnSample(
        random_image(i),
        random_image(10 + i, mode="L"),
        random_image(20 + i),
        random_image(30 + i),
        description=f"garment {i}",
        seed=i,
    )


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float32, 1e-5), (torch.float16, 2e-2)])
def test_graphed_steps_equal_eager_ones_while_another_thread_encodes(
    tiny_model_dir: Path, dtype: torch.dtype, tolerance: float
) -> None:
    batch = [sample(i) for i in range(3)]
    eager = TryOnPipeline(
        load_model(tiny_model_dir, dtype, "cuda"),
        EngineOptimizations(cuda_graphs=False, compile=False),
    )
    graphed_model = load_model(tiny_model_dir, dtype, "cuda")
    graphed = TryOnPipeline(graphed_model, EngineOptimizations(compile=False))
    encoder = PromptEncoder(graphed_model)
    stop = threading.Event()

    def encode_until_stopped() -> None:
        while not stop.is_set():
            encoder.encode_garment("a shirt from another thread")

    thread = threading.Thread(target=encode_until_stopped)
    thread.start()
    try:
        got = graphed(batch, OPTIONS)
        again = graphed(batch, OPTIONS)
    finally:
        stop.set()
        thread.join()
    expected = eager(batch, OPTIONS)

    assert graphed.graphs is not None and len(graphed.graphs) > 0
    worst = max(float((a.image - b.image).abs().max()) for a, b in zip(got, expected, strict=True))
    assert worst < tolerance
    assert all(torch.equal(a.image, b.image) for a, b in zip(got, again, strict=True))
