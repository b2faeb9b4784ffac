"""Does a warm-up on one thread warm the GPU for requests served on another?

PyTorch keeps some per-thread state (cuDNN's plan cache is thread_local in its v8 convolution
code; cuBLAS handles are per thread and stream). The service used to warm up on the main thread
while its worker thread serves. This times one 20-step try-on, full size, CUDA graphs without
compile (quick to start), conditioning cached: on the warm-up's thread, then the first and the
second on a new thread, for cuDNN benchmark mode off (the default) and on (a batch size warmed up
with it on).

PYTHONPATH=src:. python bench/thread_probe.py   (GPU)
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import torch

from bench import gpu_bench
from bench.fullsize import build_fullsize_model
from bench.gpu_bench import make_sample, tryon, use_noise_inputs
from vton.engine.optimize import EngineOptimizations
from vton.engine.pipeline import TryOnPipeline
from vton.engine.runtime import quiet_model_libraries
from vton.engine.types import DiffusionOptions

OUT = Path(os.environ.get("OUT", "var/bench"))


def seconds(pipeline: TryOnPipeline, batch: int) -> float:
    samples = [make_sample(0, g, keyed=True, seed=g) for g in range(batch)]
    start = time.perf_counter()
    tryon(pipeline, samples, 20)
    torch.cuda.synchronize()
    return time.perf_counter() - start


def on_new_thread(pipeline: TryOnPipeline, batch: int) -> list[float]:
    """The first and the second try-on of a thread that never ran anything before."""
    times: list[float] = []
    thread = threading.Thread(
        target=lambda: times.extend(seconds(pipeline, batch) for _ in range(2))
    )
    thread.start()
    thread.join()
    return times


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    quiet_model_libraries()
    use_noise_inputs(persons=1, garments=4)
    pipeline = TryOnPipeline(
        build_fullsize_model(torch.float16), EngineOptimizations(compile=False)
    )
    warm = DiffusionOptions(steps=1, height=gpu_bench.H, width=gpu_bench.W)
    rows = {}
    for benchmark, batch in ((False, 1), (False, 2), (True, 3)):
        torch.backends.cudnn.benchmark = benchmark
        pipeline.warm_up([batch], warm)
        seconds(pipeline, batch)  # the samples' conditioning encoded and cached
        same = [seconds(pipeline, batch) for _ in range(2)]
        new = on_new_thread(pipeline, batch)
        label = f"batch {batch}, cuDNN benchmark {'on' if benchmark else 'off'}"
        rows[label] = {"warm-up thread": same, "new thread": new}
        print(label, rows[label], flush=True)
    (OUT / "thread_probe.json").write_text(json.dumps(rows, indent=2))
    print(
        f"\ncard: {torch.cuda.get_device_name()} | torch {torch.__version__} | graphed, no compile"
    )
    print("| case | warm-up thread 1st / 2nd (s) | new thread 1st / 2nd (s) |")
    print("| --- | --- | --- |")
    for label, r in rows.items():
        a, b = r["warm-up thread"], r["new thread"]
        print(f"| {label} | {a[0]:.3f} / {a[1]:.3f} | {b[0]:.3f} / {b[1]:.3f} |")


if __name__ == "__main__":
    main()
