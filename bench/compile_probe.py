"""Regional torch.compile on the full-size model: which regions, compile time cold and warm,
step time under the engine's CUDA graphs, and the difference to the uncompiled step.

PYTHONPATH=src:. python bench/compile_probe.py --phase cold   (then --phase warm, a new process
with the same TORCHINDUCTOR_CACHE_DIR: the restart a server sees with the cache on disk)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from diffusers.models.attention import FeedForward
from diffusers.models.resnet import ResnetBlock2D

from bench.fullsize import build_fullsize_model
from bench.gpu_bench import eager_step, full_step, log, one_step_inputs, timed, use_noise_inputs
from vton.engine.optimize import EngineOptimizations, compile_regions, compiled_block_types
from vton.engine.pipeline import TryOnPipeline
from vton.engine.runtime import quiet_model_libraries
from vton.engine.step import CudaGraphSteps

BATCHES = (1, 4)


def uncompile(model) -> None:
    torch._dynamo.reset()
    for network in (model.tryon_net, model.garment_net, model.vae):
        for module in network.modules():
            module._compiled_call_impl = None


def measure(pipeline: TryOnPipeline, inputs, reference, label: str, batches) -> dict:
    """First call per batch (compiles), then the graphed step and the decode, fresh graphs."""
    out: dict[str, float] = {}
    for b in batches:
        cond, latents = inputs[b]
        start = time.perf_counter()
        eager_step(pipeline, cond, latents)
        torch.cuda.synchronize()
        out[f"b{b} first call s"] = time.perf_counter() - start
    pipeline.graphs = CudaGraphSteps(pipeline.model)
    for b in batches:
        cond, latents = inputs[b]
        out[f"b{b} graphed step ms"] = (
            timed(lambda c=cond, x=latents: full_step(pipeline, c, x), 10) * 1e3
        )
        noise = full_step(pipeline, cond, latents).float()
        out[f"b{b} rel L2 vs uncompiled"] = float(
            (noise - reference[b]).norm() / reference[b].norm()
        )
    latents = inputs[1][1]
    out["vae decode ms"] = timed(lambda: pipeline.decode(latents), 5) * 1e3
    images = pipeline.decode(latents)[0]
    out["vae max abs vs uncompiled"] = float((images - reference["decode"]).abs().max())
    pipeline.graphs = None
    torch.cuda.empty_cache()
    for key, value in out.items():
        log(f"[{label}] {key}: {value:.4g}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--phase", choices=["cold", "warm", "channels-last"], default="cold")
    args = parser.parse_args()
    quiet_model_libraries()
    card = torch.cuda.get_device_name()
    log(
        f"card {card}, torch {torch.__version__}, cache {os.environ.get('TORCHINDUCTOR_CACHE_DIR')}"
    )
    model = build_fullsize_model(torch.float16)
    use_noise_inputs(persons=4, garments=8)
    pipeline = TryOnPipeline(model, EngineOptimizations(cuda_graphs=False, compile=False))
    inputs = {b: one_step_inputs(pipeline, b) for b in BATCHES}
    reference = {b: eager_step(pipeline, *inputs[b]).float() for b in BATCHES}
    reference["decode"] = pipeline.decode(inputs[1][1])[0]

    results: dict[str, dict] = {}
    blocks = compiled_block_types()
    if args.phase == "cold":
        results["none"] = measure(pipeline, inputs, reference, "none", BATCHES)
        variants = {
            "resnet+feedforward": ((ResnetBlock2D, FeedForward), False),
            "resnet+transformer block": (blocks, False),
        }
    elif args.phase == "channels-last":
        variants = {
            "resnet+transformer block": (blocks, False),
            "... + channels_last": (blocks, True),
        }
    else:
        variants = {"resnet+transformer block": (blocks, False)}
    for label, (types, channels_last) in variants.items():
        uncompile(model)
        if channels_last:
            for network in (model.tryon_net, model.garment_net, model.vae):
                network.to(memory_format=torch.channels_last)
        count = compile_regions(model, block_types=types)
        log(f"[{label}] compiled {count} blocks")
        results[label] = measure(pipeline, inputs, reference, label, BATCHES)

    out = Path(os.environ.get("OUT", "var/bench"))
    out.mkdir(parents=True, exist_ok=True)
    (out / f"compile_probe_{args.phase}.json").write_text(
        json.dumps({"card": card, **results}, indent=2)
    )
    keys = sorted({k for r in results.values() for k in r})
    print(f"\ncard: {card} | torch {torch.__version__} | fp16 1024x768 | phase {args.phase}")
    print("| measure | " + " | ".join(results) + " |")
    print("| --- |" + " --- |" * len(results))
    for key in keys:
        print(
            f"| {key} | "
            + " | ".join(f"{r.get(key, float('nan')):.4g}" for r in results.values())
            + " |"
        )


if __name__ == "__main__":
    main()
