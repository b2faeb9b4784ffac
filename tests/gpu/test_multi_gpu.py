"""A pipeline on cuda:1 captures and replays its CUDA graphs on its own device, whichever
device is current on the calling thread: from a thread left on cuda:0, and from one bound to
cuda:1 as the service's worker threads are (a capture on cuda:0's stream once replayed stale
images: NOTES.md, "CUDA graphs on the model's own device")."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from tests.helpers import random_image
from vton.engine.checkpoint import load_model
from vton.engine.optimize import EngineOptimizations
from vton.engine.pipeline import TryOnPipeline
from vton.engine.types import DiffusionOptions, TryOnSample

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices"),
]
OPTIONS = DiffusionOptions(steps=4, height=128, width=96)


@pytest.mark.parametrize("bind_thread", [False, True], ids=["thread on cuda:0", "bound to cuda:1"])
def test_graphs_of_a_pipeline_on_the_second_device(tiny_model_dir: Path, bind_thread: bool) -> None:
    person, mask, pose, garment = (
        random_image(i, mode=m) for i, m in enumerate(["RGB", "L", "RGB", "RGB"])
    )
    samples = [
        TryOnSample(
            person, mask, pose, garment, "a shirt", seed=seed, person_key="p", garment_key="g"
        )
        for seed in (1, 2)
    ]
    differences: list[float] = []
    errors: list[BaseException] = []

    def body() -> None:
        try:
            if bind_thread:
                torch.cuda.set_device("cuda:1")
            eager = TryOnPipeline(
                load_model(tiny_model_dir, torch.float16, "cuda:1"),
                EngineOptimizations(compile=False, cuda_graphs=False),
            )
            graphed = TryOnPipeline(
                load_model(tiny_model_dir, torch.float16, "cuda:1"),
                EngineOptimizations(compile=False),
            )
            graphed.warm_up([1], OPTIONS)
            for sample in samples:
                expected = eager([sample], OPTIONS)[0].image.float()
                got = graphed([sample], OPTIONS)[0].image.float()
                differences.append(float((expected - got).abs().max()))
        except BaseException as exc:  # reported on the test's thread
            errors.append(exc)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()

    assert not errors, errors
    assert len(differences) == len(samples)
    assert max(differences) < 1e-2
