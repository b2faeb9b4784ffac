"""Where one denoising step's GPU time goes: CUDA kernel time by kind (matmul, convolution,
attention, normalisation, elementwise, other), full-size model, batch 1 and 8, eager
(kernel times are what a CUDA graph replays), optionally with the regional compile; then each
kind's TFLOP (FlopCounterMode, counted after every profile: it slows later calls on the host
side) and the rate its kernels reach.

PYTHONPATH=src:. python bench/profile_step.py [--compile]   (GPU; writes $OUT/profile.json)
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from bench.fullsize import build_fullsize_model
from bench.gpu_bench import eager_step, one_step_inputs, use_noise_inputs
from vton.engine.optimize import EngineOptimizations
from vton.engine.pipeline import TryOnPipeline
from vton.engine.runtime import quiet_model_libraries

KINDS = (
    ("fused by Inductor (norms, elementwise)", ("triton_",)),
    ("attention", ("flash", "fmha", "attention", "sdpa", "softmax")),
    ("convolution", ("conv", "implicit_gemm", "cudnn", "winograd", "fprop", "dgrad")),
    ("matmul", ("gemm", "cutlass", "cublas", "sm90_xmma", "matmul", "wgmma", "nvjet")),
    ("normalisation", ("norm", "welford")),
    ("elementwise", ("elementwise", "vectorized", "unrolled", "copy", "cat", "index", "gelu")),
)


def kind_of(name: str) -> str:
    lowered = name.lower()
    for kind, needles in KINDS:
        if any(n in lowered for n in needles):
            return kind
    return "other"


FLOP_KINDS = {
    "matmul": ("mm", "addmm", "bmm", "baddbmm"),
    "convolution": ("convolution", "_convolution", "cudnn_convolution"),
    "attention": (
        "_scaled_dot_product_cudnn_attention",
        "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_efficient_attention",
    ),
}


def tflop_by_kind(step) -> dict[str, float]:
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    by_op = {str(op).split(".")[-1]: n for op, n in counter.get_flop_counts()["Global"].items()}
    return {
        kind: sum(by_op.get(op, 0) for op in ops) / 1e12 for kind, ops in FLOP_KINDS.items()
    } | {"all": sum(by_op.values()) / 1e12}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--compile", action="store_true", help="regional torch.compile on")
    args = parser.parse_args()
    quiet_model_libraries()
    out = Path(os.environ.get("OUT", "var/bench"))
    out.mkdir(parents=True, exist_ok=True)
    model = build_fullsize_model(torch.float16)
    use_noise_inputs(persons=1, garments=8)
    pipeline = TryOnPipeline(model, EngineOptimizations(cuda_graphs=False, compile=args.compile))
    report: dict[str, dict[str, float]] = {}
    steps = {}
    for batch in (1, 8):
        cond, latents = one_step_inputs(pipeline, batch)
        steps[batch] = lambda c=cond, x=latents: eager_step(pipeline, c, x)
        for _ in range(3):
            eager_step(pipeline, cond, latents)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
            eager_step(pipeline, cond, latents)
            torch.cuda.synchronize()
        by_kind: dict[str, float] = defaultdict(float)
        kernels = 0
        for event in prof.key_averages():
            device_us = getattr(event, "self_device_time_total", 0) or getattr(
                event, "self_cuda_time_total", 0
            )
            if device_us and event.device_type == torch.autograd.DeviceType.CUDA:
                by_kind[kind_of(event.key)] += device_us / 1000.0
                kernels += event.count
        by_kind["kernels launched"] = kernels
        report[f"batch {batch}"] = dict(by_kind)
        top = sorted(
            (e for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA),
            key=lambda e: -(getattr(e, "self_device_time_total", 0) or 0),
        )[:12]
        report[f"batch {batch} top kernels (ms)"] = {
            e.key[:90]: (getattr(e, "self_device_time_total", 0) or 0) / 1000.0 for e in top
        }
    for batch, step in steps.items():
        tflop = tflop_by_kind(step)
        ms = report[f"batch {batch}"]
        report[f"batch {batch} TFLOP"] = tflop
        report[f"batch {batch} TFLOP/s of each kind's kernels"] = {
            kind: tflop[kind] / (ms[kind] / 1e3) for kind in FLOP_KINDS if ms.get(kind)
        }
    (out / f"profile{'_compiled' if args.compile else ''}.json").write_text(
        json.dumps(report, indent=2)
    )
    for name, values in report.items():
        print(f"== {name}")
        for key, value in sorted(values.items(), key=lambda kv: -kv[1]):
            print(f"  {key:92s} {value:10.2f}")


if __name__ == "__main__":
    main()
