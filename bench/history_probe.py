"""Why gpu_bench's one try-on (1.065 s, H100) is slower than the same try-on in a process that
only warmed up (0.957 s): its decode took 129 ms instead of 64, its diffusion 923 ms instead of
880. One 20-step try-on's phases (`gpu_bench.tryon_split`, median of 3), measured after warm-up
and again after each of the steps gpu_bench runs before its measurements, in order: the start-up
objects frozen, one step graphed and eager, the per-phase timings, the FLOP counting. Also
Dynamo's graph count and the caching allocator's device allocations and retries, and the decode
of the try-on's own latents timed alone.

PYTHONPATH=src:. python bench/history_probe.py   (GPU; writes $OUT/history_probe.json)
"""

from __future__ import annotations

import json

import torch
from torch._dynamo.utils import counters

from bench import gpu_bench as gb
from bench.fullsize import build_fullsize_model
from vton.engine.gc_pause import freeze_start_up_objects
from vton.engine.optimize import EngineOptimizations
from vton.engine.pipeline import TryOnPipeline
from vton.engine.runtime import quiet_model_libraries
from vton.engine.types import DiffusionOptions

OPTIONS = DiffusionOptions(steps=20, height=gb.H, width=gb.W)
ALLOCATOR_COUNTS = ("num_alloc_retries", "num_device_alloc", "num_device_free")


def allocator_counts() -> dict[str, int]:
    stats = torch.cuda.memory_stats()
    return {name: stats.get(name, 0) for name in ALLOCATOR_COUNTS}


def tryon_phases(pipeline: TryOnPipeline) -> dict[str, float]:
    one = [gb.make_sample(0, 0, keyed=True)]
    before = allocator_counts()
    phases = gb.tryon_split(pipeline, one, OPTIONS.steps)
    latents = pipeline.final_latents(one, OPTIONS)
    after = allocator_counts()
    return {
        **{key: round(ms, 1) for key, ms in phases.items()},
        "decode_alone": round(gb.timed(lambda: pipeline.decode(latents), repeats=3) * 1e3, 1),
        **{name: after[name] - before[name] for name in ALLOCATOR_COUNTS},
        "dynamo_graphs": counters["stats"]["unique_graphs"],
    }


@torch.no_grad()
def main() -> None:
    gb.OUT.mkdir(parents=True, exist_ok=True)
    quiet_model_libraries()
    model = build_fullsize_model(torch.float16)
    pipeline = TryOnPipeline(model, EngineOptimizations())
    pipeline.warm_up(gb.WARM_UP_SIZES, DiffusionOptions(steps=1, height=gb.H, width=gb.W))
    gb.use_noise_inputs(persons=4, garments=16)
    cond, latents = gb.one_step_inputs(pipeline, 1)
    sample = [gb.make_sample(0, 0, keyed=False)]
    one_step = DiffusionOptions(steps=1, height=gb.H, width=gb.W)
    history = {
        "warmed up": lambda: None,
        "start-up objects frozen": freeze_start_up_objects,
        "one step graphed and eager": lambda: (
            gb.full_step(pipeline, cond, latents),
            gb.eager_step(pipeline, cond, latents),
        ),
        "GarmentNet step alone": lambda: gb.timed(lambda: gb.garment_step(pipeline, cond), 3),
        "steps as the loop runs them": lambda: gb.timed(gb.loop_steps(pipeline, cond, latents), 2),
        "encoders": lambda: pipeline.conditioning.assemble(sample, one_step, True),
        "FLOPs counted": lambda: (
            gb.count_flops(lambda: gb.garment_step(pipeline, cond)),
            gb.count_flops(lambda: gb.tryon_step(pipeline, cond, latents)),
        ),
    }
    results = {"card": torch.cuda.get_device_name()}
    for name, step in history.items():
        step()
        results[name] = tryon_phases(pipeline)
        gb.log(f"after {name}: {results[name]}")
    (gb.OUT / "history_probe.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
