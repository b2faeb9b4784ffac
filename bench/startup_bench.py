"""Start-up to ready on one GPU, as the service does it: model on the device, optimisations
applied (regional compile included), every batch size up to VTON_MAX_BATCH warmed up (both
garment layouts, CUDA graphs captured). Run it twice with the same TORCHINDUCTOR_CACHE_DIR: the
first start compiles, the second is a restart with the compile cache on disk.

PYTHONPATH=src:. python bench/startup_bench.py [--max-batch 8] [--cudnn-benchmark] [--off NAME...]
Ends with one 20-step try-on's time, so a start-up variant's cost on the request is seen too.
(Random weights built on the GPU stand in for the checkpoint load, which is not timed here.)
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from bench.fullsize import build_fullsize_model
from bench.gpu_bench import make_sample, timed, tryon, use_noise_inputs
from vton.engine.gc_pause import freeze_start_up_objects
from vton.engine.optimize import EngineOptimizations
from vton.engine.pipeline import TryOnPipeline
from vton.engine.runtime import quiet_model_libraries
from vton.engine.types import DiffusionOptions


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument(
        "--cudnn-benchmark",
        action="store_true",
        help="cuDNN autotunes each new convolution shape (off by default)",
    )
    parser.add_argument(
        "--off",
        nargs="*",
        default=[],
        choices=["garment_net_ahead", "batch_cross_projections", "fold_zero_garment_keys"],
        help="optimisations to turn off (what each costs the restart)",
    )
    args = parser.parse_args()
    quiet_model_libraries()
    start = time.perf_counter()
    model = build_fullsize_model(torch.float16)
    torch.cuda.synchronize()
    built = time.perf_counter()
    off = dict.fromkeys(args.off, False)
    opts = EngineOptimizations(cudnn_benchmark=args.cudnn_benchmark, **off)
    pipeline = TryOnPipeline(model, opts)
    took = pipeline.warm_up(range(1, args.max_batch + 1), DiffusionOptions(height=1024, width=768))
    full_collection_ms = freeze_start_up_objects()  # the service's last step before ready
    ready = time.perf_counter()
    result = {
        "card": torch.cuda.get_device_name(),
        "cache_dir": os.environ.get("TORCHINDUCTOR_CACHE_DIR"),
        "build_s": round(built - start, 1),
        "optimise_and_warm_up_s": round(ready - built, 1),
        "warm_up_ms_per_batch": {b: round(ms) for b, ms in took.items()},
        "gc_full_collection_ms": round(full_collection_ms),
        "cuda_graphs": len(pipeline.graphs) if pipeline.graphs is not None else 0,
        "cudnn_benchmark": opts.cudnn_benchmark,
        "off": args.off,
        "compile_counters": compile_counters(),
        "one_tryon_20_steps_s": round(one_tryon_s(pipeline), 3),
    }
    print(json.dumps(result), flush=True)


def compile_counters() -> dict[str, int]:
    """Dynamo's graphs and Inductor's FX-graph cache hits and misses in this process: a warm
    restart should miss nothing."""
    from torch._dynamo.utils import counters

    return {
        "dynamo_unique_graphs": counters["stats"]["unique_graphs"],
        **{
            f"{name}_{outcome}": counters[group][f"{name}_{outcome}"]
            for group, name in (("inductor", "fxgraph_cache"), ("aot_autograd", "autograd_cache"))
            for outcome in ("hit", "miss", "bypass")
        },
    }


def one_tryon_s(pipeline: TryOnPipeline) -> float:
    """Median of 5 warm 20-step try-ons (server time to PNG bytes), noise images."""
    use_noise_inputs(persons=1, garments=1)
    one = [make_sample(0, 0, keyed=True)]
    return timed(lambda: tryon(pipeline, one, 20), repeats=5)


if __name__ == "__main__":
    main()
