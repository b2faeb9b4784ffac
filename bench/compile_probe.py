"""Regional torch.compile on the full-size model: compile time, step time, and the difference.

PYTHONPATH=src:. python bench/compile_probe.py  (GPU; the optimised engine with and without it)
"""

from __future__ import annotations

import time

import torch

from bench import gpu_bench
from bench.fullsize import build_fullsize_model
from bench.gpu_bench import PERSONS, eager_step, full_step, log, make_sample, noise_image, timed
from vton.engine.optimize import EngineOptimizations, compile_regions
from vton.engine.pipeline import TryOnPipeline
from vton.engine.runtime import quiet_model_libraries
from vton.engine.step import CudaGraphSteps
from vton.engine.types import DiffusionOptions


def graphed_copy(pipeline: TryOnPipeline) -> TryOnPipeline:
    """The same pipeline with fresh CUDA graphs (captured on first use)."""
    graphed = TryOnPipeline.__new__(TryOnPipeline)
    graphed.__dict__.update(pipeline.__dict__)
    graphed.graphs = CudaGraphSteps(pipeline.model)
    return graphed


def main() -> None:
    quiet_model_libraries()
    model = build_fullsize_model(torch.float16)
    gpu_bench.PERSONS[:] = [(noise_image(10), noise_image(100, "L"), noise_image(200))]
    gpu_bench.GARMENTS[:] = [noise_image(300 + i) for i in range(8)]
    pipeline = TryOnPipeline(model, EngineOptimizations(cuda_graphs=False))
    rows = []
    for batch in (1,):
        samples = [make_sample(0, i, keyed=False) for i in range(batch)]
        options = DiffusionOptions(steps=1, height=1024, width=768)
        cond = pipeline.conditioning.assemble(
            samples, options, guidance=True, dedupe_garments=False
        )
        latents = torch.randn(batch, 4, 128, 96, device="cuda", dtype=torch.float16)
        rows.append((batch, cond, latents))
    before = {b: timed(lambda c=c, x=x: eager_step(pipeline, c, x), repeats=5) for b, c, x in rows}
    plain_graphs = graphed_copy(pipeline)
    for b, c, x in rows:
        t = timed(lambda c=c, x=x: full_step(plain_graphs, c, x), repeats=5)
        log(f"batch {b}: CUDA graph without compile {t * 1e3:.1f} ms")
    plain_graphs.graphs = None  # free the captured graphs before compiling
    reference = {b: eager_step(pipeline, c, x).float() for b, c, x in rows}
    start = time.perf_counter()
    count = compile_regions(model)
    for _, c, x in rows:
        eager_step(pipeline, c, x)
    torch.cuda.synchronize()
    compile_s = time.perf_counter() - start
    log(f"compiled {count} blocks; first calls at batch 1 and 8 took {compile_s:.1f}s")
    after = {b: timed(lambda c=c, x=x: eager_step(pipeline, c, x), repeats=5) for b, c, x in rows}
    for b, c, x in rows:
        out = eager_step(pipeline, c, x).float()
        rel = float((out - reference[b]).norm() / reference[b].norm())
        log(
            f"batch {b}: eager step {before[b] * 1e3:.1f} ms -> compiled regions "
            f"{after[b] * 1e3:.1f} ms; rel L2 {rel:.2e}"
        )
    graphed = graphed_copy(pipeline)
    for b, c, x in rows:
        t = timed(lambda c=c, x=x: full_step(graphed, c, x), repeats=5)
        log(f"batch {b}: compiled regions + CUDA graph {t * 1e3:.1f} ms")


if __name__ == "__main__":
    assert PERSONS is not None
    main()
