"""Variants against the default, one process, identical weights and inputs: the default without
garment_net_ahead, without batch_cross_projections or with fold_zero_garment_keys (a second
model with the same seed), each of which keeps the output up to fp16 rounding: the graphed step
at batch 1, 2, 4 and 8 as the loop runs it, one 20-step try-on, 10 garments on one person, the
image against the default's. With compile a second model compiles again: run `--no-compile` to
stay within one device call. Also where one default try-on's time goes (phases, and the GPU's
idle time between kernels with the largest gaps).

PYTHONPATH=src:. python bench/modes_probe.py [--no-compile] [--modes A,B]
(GPU; BENCH_SMOKE=1 for a CPU check)
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from dataclasses import replace

import torch

from bench import gpu_bench
from bench.fullsize import build_fullsize_model
from bench.gpu_bench import (
    DEVICE,
    LOOP_STEPS,
    OUT,
    log,
    loop_steps,
    make_sample,
    one_step_inputs,
    peak_gib,
    psnr,
    smoke_model,
    sync,
    timed,
    tryon,
    use_noise_inputs,
    with_optimizations,
)
from vton.engine.optimize import EngineOptimizations
from vton.engine.pipeline import TryOnPipeline
from vton.engine.runtime import quiet_model_libraries
from vton.engine.types import DiffusionOptions, TryOnSample
from vton.store.png import encode_png

STEP_BATCHES = (1, 2, 4, 8)


def step_ms(pipeline: TryOnPipeline, batch: int) -> float:
    """The graphed step as the pipeline's loop runs it (with its share of GarmentNet passes run
    outside the step)."""
    cond, latents = one_step_inputs(pipeline, batch)
    return timed(loop_steps(pipeline, cond, latents), repeats=5) * 1e3 / LOOP_STEPS


def where_the_time_goes(pipeline: TryOnPipeline) -> dict[str, float]:
    """One default try-on split into phases, and the GPU's idle time while it runs."""
    from torch.profiler import ProfilerActivity, profile

    one = [make_sample(0, 0, keyed=True)]
    options = DiffusionOptions(steps=20, height=gpu_bench.H, width=gpu_bench.W)
    outputs = pipeline(one, options)
    split = {f"{k}_ms": v for k, v in outputs[0].timings_ms.items()}
    split["png_ms"] = timed(lambda: encode_png(outputs[0].pil), repeats=5) * 1e3
    split["pipeline_call_ms"] = timed(lambda: pipeline(one, options), repeats=3) * 1e3
    if DEVICE != "cuda":
        return split
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        pipeline(one, options)
        sync()
    kernels = sorted(
        (e.time_range.start, e.time_range.end, e.name)
        for e in prof.events()
        if e.device_type == torch.autograd.DeviceType.CUDA
    )
    busy, gaps, end = 0.0, [], kernels[0][0]
    for start, stop, name in kernels:
        if start > end:
            gaps.append((start - end, name))
        busy += max(0.0, stop - max(start, end))
        end = max(end, stop)
    span = kernels[-1][1] - kernels[0][0]
    split["gpu_span_ms"], split["gpu_busy_ms"] = span / 1e3, busy / 1e3
    split["gpu_idle_ms"] = (span - busy) / 1e3
    gaps.sort(reverse=True)
    split["gaps_over_0.1ms"] = sum(1 for g, _ in gaps if g > 100)
    for i, (gap, name) in enumerate(gaps[:8]):
        log(f"  gap {i}: {gap / 1e3:.2f} ms before {name[:90]}")
    return split


def measure_mode(
    pipeline: TryOnPipeline, one: list[TryOnSample], garments: list[TryOnSample]
) -> tuple[dict[str, object], bytes]:
    """Warm-up (compile and capture), the graphed step, one try-on and 10 garments."""
    start = time.perf_counter()
    options = DiffusionOptions(steps=1, height=gpu_bench.H, width=gpu_bench.W)
    took = pipeline.warm_up((*STEP_BATCHES, 10), options)
    r: dict[str, object] = {"warm_up_s": time.perf_counter() - start, "warm_up_ms": took}
    for batch in STEP_BATCHES:
        r[f"step_b{batch}_ms"] = step_ms(pipeline, batch)
    if DEVICE == "cuda":
        torch.cuda.reset_peak_memory_stats()
    png = tryon(pipeline, one, 20)[0]
    if DEVICE == "cuda":
        r["peak_gib_tryon"] = round(peak_gib(), 2)
    r["tryon_s"] = timed(lambda: tryon(pipeline, one, 20), repeats=5)
    r["g10_s"] = timed(lambda: tryon(pipeline, garments, 20), repeats=1)
    return r, png


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--modes", default="", help="comma-separated variant rows (default all)")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    quiet_model_libraries()
    smoke = DEVICE != "cuda"
    card = "cpu smoke test" if smoke else torch.cuda.get_device_name()

    def build_model():
        return smoke_model() if smoke else build_fullsize_model(torch.float16)

    model = build_model()
    use_noise_inputs(persons=4, garments=16)

    compile_ = not args.no_compile
    default = TryOnPipeline(model, EngineOptimizations(compile=compile_))
    variants = {
        # switches read per call: the same model, graphs and caches
        "garment_net_ahead off": lambda: with_optimizations(default, garment_net_ahead=False),
        "garment_ahead_rows 16": lambda: with_optimizations(default, garment_ahead_rows=16),
        # switches applied to the model at load: a second model with the same seed
        "batch_cross_projections off": lambda: TryOnPipeline(
            build_model(), replace(default.optimizations, batch_cross_projections=False)
        ),
        "fold_zero_garment_keys on": lambda: TryOnPipeline(
            build_model(), replace(default.optimizations, fold_zero_garment_keys=True)
        ),
    }
    chosen = args.modes.split(",") if args.modes else list(variants)
    unknown = set(chosen) - set(variants)
    if unknown:
        parser.error(f"unknown modes {sorted(unknown)}; known: {list(variants)}")
    pipelines = {"default": lambda: default} | {m: variants[m] for m in chosen}
    one = [make_sample(0, 0, keyed=True)]
    garments = [make_sample(0, g, keyed=True, seed=g) for g in range(10)]
    results: dict[str, dict[str, object]] = {}
    reference_png: bytes | None = None
    for mode, make_pipeline in pipelines.items():
        try:
            r, png = measure_mode(make_pipeline(), one, garments)
        except Exception as exc:  # keep the other modes' numbers
            log(f"[{mode}] failed: {exc!r}")
            continue
        finally:
            gc.collect()  # a second model goes before the next is built
            if DEVICE == "cuda":
                torch.cuda.empty_cache()
        if reference_png is None:
            reference_png = png
        else:
            max_abs, image_psnr = psnr(reference_png, png)
            r["image_vs_default"] = f"{max_abs} / {image_psnr:.1f} dB"
        results[mode] = r
        log(f"[{mode}] {r}")
    split = where_the_time_goes(default)
    log(f"one default try-on, where the time goes: {json.dumps(split)}")
    (OUT / "modes_probe.json").write_text(json.dumps({"results": results, "split": split}))

    log(f"\ncard: {card} | torch {torch.__version__} | compile {compile_}")
    steps = [f"step b{b} (ms)" for b in STEP_BATCHES]
    columns = [*steps, "one try-on (s)", "10 garments (s)", "image vs default"]
    log(f"| mode | {' | '.join(columns)} |")
    log(f"|{' --- |' * (len(columns) + 1)}")
    for mode, r in results.items():
        step_cells = " | ".join(f"{r[f'step_b{b}_ms']:.1f}" for b in STEP_BATCHES)
        log(
            f"| {mode} | {step_cells} | {r['tryon_s']:.3f} | {r['g10_s']:.2f} | "
            f"{r.get('image_vs_default', '-')} |"
        )


if __name__ == "__main__":
    main()
