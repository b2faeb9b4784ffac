"""Two GPUs, tiny model: are CUDA graphs of a pipeline on cuda:1 correct when it is warmed up
and run from a thread whose current device is cuda:0, and from a thread bound to cuda:1 (as the
service's worker threads are)? Each case compares the graphed pipeline's images with the same
weights run eagerly (max abs difference per seed; 0 up to fp16 noise is correct).

PYTHONPATH=src:. python bench/multi_gpu_check.py   (at least two CUDA devices)
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vton.engine.checkpoint import load_model
from vton.engine.optimize import EngineOptimizations
from vton.engine.pipeline import TryOnPipeline
from vton.engine.tiny import make_tiny_model
from vton.engine.types import DiffusionOptions, TryOnSample

OPTIONS = DiffusionOptions(steps=4, height=128, width=96)


def random_image(rng: np.random.Generator, mode: str) -> Image.Image:
    shape = (128, 96, 3) if mode == "RGB" else (128, 96)
    return Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode)


def graphed_vs_eager(tiny: Path, samples: dict[int, TryOnSample], bind: bool) -> dict:
    """On a new thread (bound to cuda:1 or left on cuda:0): the graphed pipeline's images
    against the eager one's, per seed."""
    result: dict[str, object] = {}

    def body() -> None:
        if bind:
            torch.cuda.set_device("cuda:1")
        eager_opts = EngineOptimizations(compile=False, cuda_graphs=False)
        eager = TryOnPipeline(load_model(tiny, torch.float16, "cuda:1"), eager_opts)
        graphed = TryOnPipeline(
            load_model(tiny, torch.float16, "cuda:1"), EngineOptimizations(compile=False)
        )
        graphed.warm_up([1], OPTIONS)
        for seed, sample in samples.items():
            expected = eager([sample], OPTIONS)[0].image.float()
            got = graphed([sample], OPTIONS)[0].image.float()
            result[f"seed {seed}"] = round(float((expected - got).abs().max()), 4)
        result["graphs"] = len(graphed.graphs)  # type: ignore[arg-type]

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    return result


def main() -> None:
    if torch.cuda.device_count() < 2:
        raise SystemExit("needs two CUDA devices")
    tiny = make_tiny_model(Path(tempfile.mkdtemp()) / "tiny")
    rng = np.random.default_rng(0)
    person, mask, pose, garment = (random_image(rng, m) for m in ("RGB", "L", "RGB", "RGB"))
    samples = {
        seed: TryOnSample(
            person, mask, pose, garment, "a shirt", seed=seed, person_key="p", garment_key="g"
        )
        for seed in (1, 2)
    }
    print(
        f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    )
    for label, bind in (("thread on cuda:0", False), ("thread bound to cuda:1", True)):
        print(f"{label}: max abs graphed vs eager {graphed_vs_eager(tiny, samples, bind)}")


if __name__ == "__main__":
    main()
