"""Full-size IDM-VTON on one GPU: the original implementation's way (BASELINE) against the
optimised engine, on identical inputs and noise, in one process. Prints a table last and writes
details to $OUT (or ./var/bench). Run: PYTHONPATH=src:. python bench/gpu_bench.py [--no-compile]

Baseline = EngineOptimizations.reference(): eager fp16, GarmentNet in full every step, TryonNet
self-attention with queries for the garment tokens too, conditioning re-encoded per request, the
VAE in fp32 as its config says (no TF32), garments one after another.
"""

from __future__ import annotations

import argparse
import copy
import gc
import io
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from bench.fullsize import build_fullsize_model
from vton.engine.garment_cache import GarmentFeatureCache
from vton.engine.gc_pause import freeze_start_up_objects
from vton.engine.images import to_pil
from vton.engine.optimize import EngineOptimizations
from vton.engine.pipeline import TryOnPipeline
from vton.engine.runtime import quiet_model_libraries
from vton.engine.step import run_garment_net, run_networks
from vton.engine.types import DiffusionOptions, TryOnSample
from vton.store.png import encode_png

WARM_UP_SIZES = (1, 2, 3, 4, 8, 10, 16)
GARMENT_CACHE_BYTES = 40 << 30  # 10 garments x 20 steps x 157 MB at 1024x768, and room
W, H = (96, 128) if os.environ.get("BENCH_SMOKE") else (768, 1024)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
OUT = Path(os.environ.get("OUT", "var/bench"))
rows: list[tuple[str, str, str, str]] = []  # (measure, baseline, optimised, note)
details: dict[str, object] = {}


def log(message: str) -> None:
    print(message, flush=True)


def peak_gib() -> float:
    """Peak GPU memory allocated since the last reset, in GiB (0 on the CPU)."""
    return torch.cuda.max_memory_allocated() / 2**30 if DEVICE == "cuda" else 0.0


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall seconds of fn() (the GPU synchronised) after warm-up."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def noise_image(seed: int, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    shape = (H, W, 3) if mode == "RGB" else (H, W)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode)


def use_noise_inputs(persons: int, garments: int) -> None:
    """The people and garments make_sample picks from: noise images of fixed seeds (person i:
    10 + i, its mask 100 + i, its pose 200 + i; garment g: 300 + g)."""
    PERSONS[:] = [
        (noise_image(10 + i), noise_image(100 + i, "L"), noise_image(200 + i))
        for i in range(persons)
    ]
    GARMENTS[:] = [noise_image(300 + g) for g in range(garments)]


def make_sample(person: int, garment: int, keyed: bool, seed: int = 42) -> TryOnSample:
    return TryOnSample(
        person=PERSONS[person][0],
        mask=PERSONS[person][1],
        pose=PERSONS[person][2],
        garment=GARMENTS[garment],
        description=f"a garment number {garment}",
        seed=seed,
        person_key=f"p{person}:v1" if keyed else None,
        garment_key=f"g{garment}:v1" if keyed else None,
    )


def tryon(pipeline: TryOnPipeline, samples: list[TryOnSample], steps: int) -> list[bytes]:
    """Server time from artifacts to PNG bytes (encoded one after another, as the service's
    finisher thread does; each encode uses the encoder's own threads)."""
    outputs = pipeline(samples, DiffusionOptions(steps=steps, height=H, width=W))
    return [encode_png(o.pil) for o in outputs]


def tryon_split(pipeline: TryOnPipeline, samples: list[TryOnSample], steps: int) -> dict:
    """One try-on's milliseconds per phase (median of 3): the pipeline's own timings (encode,
    diffusion, decode, each ended by a device sync), the 8-bit images to PIL and the rest of the
    call, the PNG encodes, and the total as `tryon` times it."""
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        outputs = pipeline(samples, DiffusionOptions(steps=steps, height=H, width=W))
        called = time.perf_counter()
        for output in outputs:
            encode_png(output.pil)
        end = time.perf_counter()
        split = dict(outputs[0].timings_ms)
        split["to_pil_and_rest"] = (called - start) * 1e3 - sum(split.values())
        split["png"] = (end - called) * 1e3
        split["total"] = (end - start) * 1e3
        runs.append(split)
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


class CollectionPauses:
    """Python's garbage collections while installed: per generation, count and milliseconds."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._start = 0.0

    def _on(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.pauses[info["generation"]].append((time.perf_counter() - self._start) * 1e3)

    def __enter__(self) -> CollectionPauses:
        gc.callbacks.append(self._on)
        return self

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self._on)

    def summary(self) -> dict[str, str]:
        return {
            f"gen{g}": f"{len(p)} x, {sum(p):.0f} ms, max {max(p, default=0):.0f} ms"
            for g, p in self.pauses.items()
        }


def matmul_rate(dtype: torch.dtype, n: int = 8192) -> float:
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    b = torch.randn(n, n, device="cuda", dtype=dtype)
    seconds = timed(lambda: a @ b, repeats=20, warmup=3)
    return 2 * n**3 / seconds / 1e12


def one_step_inputs(pipeline: TryOnPipeline, batch: int):
    samples = [make_sample(i % len(PERSONS), i % len(GARMENTS), keyed=False) for i in range(batch)]
    options = DiffusionOptions(steps=1, height=H, width=W)
    cond = pipeline.conditioning.assemble(samples, options, guidance=True, dedupe_garments=False)
    latents = torch.randn(
        batch,
        4,
        H // 8,
        W // 8,
        device=DEVICE,
        dtype=pipeline.model.dtype,
        generator=torch.Generator(DEVICE).manual_seed(0),
    )
    return cond, latents


def garment_step(pipeline: TryOnPipeline, cond, t: int = 500) -> None:
    run_garment_net(pipeline.model, torch.tensor(t, device=DEVICE), cond)
    pipeline.model.bank.guidance, pipeline.model.bank.index = True, cond.garment_index


def step_input(cond, latents: torch.Tensor) -> torch.Tensor:
    """TryonNet's 13-channel input for the guidance batch, as the pipeline builds it."""
    latent_in = torch.cat([latents, latents])
    return torch.cat([latent_in, cond.mask, cond.masked_image_latents, cond.pose_latents], 1)


@torch.no_grad()
def tryon_step(pipeline: TryOnPipeline, cond, latents, t: int = 500) -> torch.Tensor:
    """TryonNet alone, on the garment features `garment_step` left in the bank."""
    return pipeline.model.tryon_net(
        step_input(cond, latents),
        t,
        encoder_hidden_states=cond.context,
        added_cond_kwargs={"text_embeds": cond.text_embeds, "time_ids": cond.time_ids},
    ).sample


def eager_step(pipeline, cond, latents) -> torch.Tensor:
    """GarmentNet + TryonNet without a CUDA graph, whatever the pipeline's setting."""
    t = torch.tensor(500, device=latents.device)
    return run_networks(pipeline.model, step_input(cond, latents), t, cond, True)


def full_step(pipeline, cond, latents) -> torch.Tensor:
    """GarmentNet + TryonNet in one step (a CUDA graph where enabled)."""
    t = torch.tensor(500, device=latents.device)
    return pipeline.networks(step_input(cond, latents), t, cond, True)


LOOP_STEPS = 8


def loop_steps(pipeline: TryOnPipeline, cond, latents) -> Callable[[], torch.Tensor]:
    """LOOP_STEPS network steps as the pipeline's loop runs them: with the GarmentNet passes
    where its mode runs them outside the step (garment_net_ahead, garment_features_once)."""
    timesteps = torch.linspace(900, 100, LOOP_STEPS, device=latents.device).round().long()

    def run() -> torch.Tensor:
        features = pipeline.garment_features_for(cond, timesteps)
        for i, t in enumerate(timesteps):
            noise = pipeline.networks(step_input(cond, latents), t, cond, True, features(i))
        return noise

    return run


def count_flops(fn: Callable[[], object]) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops() / 1e12


def phase_split(pipeline: TryOnPipeline, label: str) -> dict[str, float]:
    """Per-phase milliseconds at batch 1 (median of repeats)."""

    cond, latents = one_step_inputs(pipeline, 1)
    phases = {
        "garmentnet_ms": timed(lambda: garment_step(pipeline, cond), repeats=10) * 1e3,
        "tryonnet_ms": timed(lambda: eager_step(pipeline, cond, latents), repeats=10) * 1e3,
        "step_as_run_ms": timed(loop_steps(pipeline, cond, latents), repeats=5) * 1e3 / LOOP_STEPS,
        "vae_decode_ms": timed(lambda: pipeline.decode(latents), repeats=5) * 1e3,
    }
    phases["tryonnet_ms"] -= phases["garmentnet_ms"]
    sample = [make_sample(0, 0, keyed=False)]
    options = DiffusionOptions(steps=1, height=H, width=W)
    phases["encoders_ms"] = (
        timed(lambda: pipeline.conditioning.assemble(sample, options, True), repeats=5) * 1e3
    )
    image = pipeline.decode(latents)[0][0]

    pil = to_pil(image)
    phases["host_to_pil_ms"] = timed(lambda: to_pil(image), repeats=5, warmup=1) * 1e3
    phases["host_png_ms"] = timed(lambda: encode_png(pil), repeats=5, warmup=1) * 1e3
    details[f"phases_{label}"] = phases
    return phases


def step_flops(pipeline: TryOnPipeline, label: str) -> dict[str, float]:
    """TFLOP of one step at batch 1, GarmentNet and TryonNet. Run after the pipeline's timings:
    on the compiled pipeline, FlopCounterMode left the decode twice as slow (64 -> 129 ms, H100)
    and the loop +36 ms for every later call in the process (`bench/history_probe.py`)."""
    cond, latents = one_step_inputs(pipeline, 1)
    flops = {
        "garmentnet_tflop": count_flops(lambda: garment_step(pipeline, cond)),
        "tryonnet_tflop": count_flops(lambda: tryon_step(pipeline, cond, latents)),
    }
    details[f"flops_{label}"] = flops
    return flops


def step_variants(pipeline: TryOnPipeline) -> dict[str, float]:
    """One denoising step (GarmentNet + TryonNet), each switch changed alone from the optimised
    setting, at batch 1 and 8: median milliseconds. (channels_last is not toggled here: moving
    weights after a CUDA graph captured them would leave the graph reading freed memory.)"""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from vton.engine.attention import TryonSelfAttentionProcessor

    model = pipeline.model
    processors = [
        p
        for p in model.tryon_net.attn_processors.values()
        if isinstance(p, TryonSelfAttentionProcessor)
    ]
    out: dict[str, float] = {}
    for batch in (1, 8):
        cond, latents = one_step_inputs(pipeline, batch)

        def step(c=cond, x=latents) -> torch.Tensor:
            return eager_step(pipeline, c, x)

        out[f"b{batch} optimised eager"] = timed(step, repeats=5) * 1e3
        out[f"b{batch} optimised cuda graph"] = (
            timed(lambda c=cond, x=latents: full_step(pipeline, c, x), repeats=5) * 1e3
        )
        for name, backend in (
            ("flash", SDPBackend.FLASH_ATTENTION),
            ("cudnn", SDPBackend.CUDNN_ATTENTION),
            ("efficient", SDPBackend.EFFICIENT_ATTENTION),
        ):
            try:
                with sdpa_kernel([backend]):
                    out[f"b{batch} sdpa={name}"] = timed(step, repeats=5) * 1e3
            except RuntimeError as exc:
                log(f"sdpa {name} unavailable: {exc}")
        for p in processors:
            p.person_queries_only = False
        out[f"b{batch} garment queries too"] = timed(step, repeats=5) * 1e3
        for p in processors:
            p.person_queries_only = True
    for key, value in out.items():
        log(f"step variant {key}: {value:.1f} ms")
    details["step_variants_ms"] = out
    return out


def psnr(a: bytes, b: bytes) -> tuple[int, float]:
    x = np.asarray(Image.open(io.BytesIO(a)), dtype=np.float64)
    y = np.asarray(Image.open(io.BytesIO(b)), dtype=np.float64)
    mse = float(np.mean((x - y) ** 2))
    return int(np.abs(x - y).max()), (math.inf if mse == 0 else 10 * math.log10(255**2 / mse))


def measure_all(
    pipeline: TryOnPipeline, keyed: bool, batched: bool, label: str
) -> dict[str, object]:
    r: dict[str, object] = {}
    one = [make_sample(0, 0, keyed)]
    if DEVICE == "cuda":
        torch.cuda.reset_peak_memory_stats()
    r["png20"] = tryon(pipeline, one, 20)  # also warms caches
    r["peak_gib_b1"] = peak_gib()
    r["t20"] = timed(lambda: tryon(pipeline, one, 20), repeats=3, warmup=0)
    log(f"[{label}] one try-on 20 steps: {r['t20']:.3f}s")
    r["split20_ms"] = tryon_split(pipeline, one, 20)
    log(f"[{label}] one try-on 20 steps, ms per phase: {r['split20_ms']}")
    r["t30"] = timed(lambda: tryon(pipeline, one, 30), repeats=2, warmup=0)
    log(f"[{label}] one try-on 30 steps: {r['t30']:.3f}s")
    for n in (3, 10):
        garments = [make_sample(0, g, keyed, seed=g) for g in range(n)]

        def run(gs: list[TryOnSample] = garments) -> object:
            if batched:
                return tryon(pipeline, gs, 20)
            return [tryon(pipeline, [g], 20) for g in gs]

        r[f"g{n}"] = timed(run, repeats=1, warmup=1 if batched else 0)
        log(f"[{label}] {n} garments, one person: {r[f'g{n}']:.3f}s")
    if batched:
        for b in (1, 2, 4, 8, 16):
            mixed = [
                make_sample(i % len(PERSONS), i % len(GARMENTS), keyed, seed=i) for i in range(b)
            ]
            seconds = timed(lambda m=mixed: tryon(pipeline, m, 20), repeats=1, warmup=1)
            r[f"tput{b}"] = b / seconds
            log(f"[{label}] throughput batch {b}: {r[f'tput{b}']:.2f} try-ons/s")
    return r


def with_optimizations(pipeline: TryOnPipeline, **changes: bool | int) -> TryOnPipeline:
    """The same pipeline (model, graphs, caches) with pipeline-level switches changed (those read
    per call: garment_features_once, garment_net_ahead and its rows, sync_free_steps)."""
    variant = copy.copy(pipeline)
    variant.optimizations = replace(pipeline.optimizations, **changes)
    return variant


def with_garment_cache(pipeline: TryOnPipeline, max_bytes: int) -> TryOnPipeline:
    """The same pipeline (model, graphs, conditioning cache) with a garment feature cache."""
    variant = copy.copy(pipeline)
    variant.garment_cache = GarmentFeatureCache(max_bytes)
    return variant


def measure_garment_cache(optimised: TryOnPipeline, default_png: bytes) -> dict:
    """The opt-in garment feature cache, every garment already cached (a repeat garment)."""
    cached = with_garment_cache(optimised, GARMENT_CACHE_BYTES)
    one = [make_sample(0, 0, keyed=True)]
    garments = [make_sample(0, g, keyed=True, seed=g) for g in range(10)]
    png = tryon(cached, one, 20)[0]  # fills the cache with this garment's features
    max_abs, image_psnr = psnr(default_png, png)
    r = {
        "t20": timed(lambda: tryon(cached, one, 20), repeats=3, warmup=0),
        "g10": timed(lambda: tryon(cached, garments, 20), repeats=1, warmup=1),
        "diff": f"{max_abs} / {image_psnr:.1f} dB",
        "cached_gib": cached.garment_cache.lru.bytes / 2**30,  # type: ignore[union-attr]
    }
    log(f"[garment feature cache, repeat garments] {r}")
    details["garment_feature_cache"] = r
    return r


def measure_garment_features_once(optimised: TryOnPipeline, default_png: bytes) -> dict:
    """The opt-in mode on the optimised pipeline."""
    once = with_optimizations(optimised, garment_features_once=True)
    one = [make_sample(0, 0, keyed=True)]
    png = tryon(once, one, 20)[0]  # also captures its TryonNet-only graph
    max_abs, image_psnr = psnr(default_png, png)
    garments = [make_sample(0, g, keyed=True, seed=g) for g in range(10)]
    mixed = [make_sample(i % len(PERSONS), i % len(GARMENTS), True, seed=i) for i in range(8)]
    r = {
        "t20": timed(lambda: tryon(once, one, 20), repeats=3, warmup=0),
        "g10": timed(lambda: tryon(once, garments, 20), repeats=1, warmup=1),
        "tput8": 8 / timed(lambda: tryon(once, mixed, 20), repeats=1, warmup=1),
        "diff": f"{max_abs} / {image_psnr:.1f} dB",
    }
    log(f"[garment features once] {r}")
    details["garment_features_once"] = r
    return r


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--no-compile", action="store_true", help="optimised without regional torch.compile"
    )
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16"])
    parser.add_argument("--variants-only", action="store_true", help="per-step switches only")
    parser.add_argument("--variants", action="store_true", help="also time per-step switches")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    quiet_model_libraries()
    smoke = DEVICE != "cuda"
    card = "cpu smoke test (tiny model)" if smoke else torch.cuda.get_device_name()
    dtype = torch.float32 if smoke else getattr(torch, args.dtype)
    log(f"card: {card}, torch {torch.__version__}, dtype {args.dtype}")
    rates = {"float16": 1.0, "bfloat16": 1.0}
    if not smoke:
        rates = {d: matmul_rate(getattr(torch, d)) for d in ("float16", "bfloat16")}
    log(f"matmul rate: {rates}")

    start = time.perf_counter()
    model = smoke_model() if smoke else build_fullsize_model(dtype)
    sync()
    build_s = time.perf_counter() - start
    log(f"built full-size model in {build_s:.1f}s")

    use_noise_inputs(persons=4, garments=16)

    if args.variants_only:
        step_variants(TryOnPipeline(model, EngineOptimizations(compile=False)))
        (OUT / "variants.json").write_text(json.dumps(details, indent=2))
        return

    # ---- BASELINE ----
    baseline = TryOnPipeline(model, EngineOptimizations.reference())
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cond, latents = one_step_inputs(baseline, 1)
    reference_noise = eager_step(baseline, cond, latents).float()
    base_phases = phase_split(baseline, "baseline")
    with CollectionPauses() as base_gc:
        base = measure_all(baseline, keyed=False, batched=False, label="baseline")
    base_flops = step_flops(baseline, "baseline")  # before the optimisations change the model

    # ---- OPTIMISED ----
    start = time.perf_counter()
    opts = EngineOptimizations(compile=not args.no_compile)
    optimised = TryOnPipeline(model, opts)
    for status in optimised.optimization_status:
        log(status.line())
    # As the service starts: every batch size the measurements use, both garment layouts.
    optimised.warm_up(WARM_UP_SIZES, DiffusionOptions(steps=1, height=H, width=W))
    warm_s = time.perf_counter() - start
    log(f"optimise + warm-up of batch sizes {WARM_UP_SIZES}: {warm_s:.1f}s")
    full_collection_ms = freeze_start_up_objects()  # as the service does once it is ready
    frozen = gc.get_freeze_count()
    log(f"full collection after warm-up: {full_collection_ms:.0f} ms, {frozen} objects frozen")
    noise = full_step(optimised, cond, latents).float()
    graph_vs_eager = float((noise - eager_step(optimised, cond, latents).float()).abs().max())
    log(f"cuda graph vs eager, same inputs: max abs difference {graph_vs_eager:.2e}")
    details["graph_vs_eager_max_abs"] = graph_vs_eager
    step_rel = float((noise - reference_noise).norm() / reference_noise.norm())
    finite = bool(torch.isfinite(reference_noise).all())
    log(
        f"one step noise prediction, optimised vs baseline: rel L2 {step_rel:.2e} (finite={finite})"
    )
    if args.variants:
        step_variants(optimised)
    opt_phases = phase_split(optimised, "optimised")
    with CollectionPauses() as opt_gc:
        opt = measure_all(optimised, keyed=True, batched=True, label="optimised")
    max_abs, image_psnr = psnr(base["png20"][0], opt["png20"][0])
    once = measure_garment_features_once(optimised, opt["png20"][0])
    repeat = measure_garment_cache(optimised, opt["png20"][0])
    opt_flops = step_flops(optimised, "optimised")  # last: it slows later calls (step_flops)

    peak = rates[args.dtype]
    step_tflop = opt_flops["garmentnet_tflop"] + opt_flops["tryonnet_tflop"]

    def achieved(tput: float) -> float:  # useful TFLOP/s at a throughput (20 steps + decode)
        return tput * (20 * step_tflop) / peak * 100

    def add(name, b, o, note=""):
        rows.append((name, b, o, note))

    add(
        "one try-on, 20 steps (s)",
        f"{base['t20']:.3f}",
        f"{opt['t20']:.3f}",
        f"x{base['t20'] / opt['t20']:.2f}",
    )
    add(
        "one try-on, 30 steps (s)",
        f"{base['t30']:.3f}",
        f"{opt['t30']:.3f}",
        f"x{base['t30'] / opt['t30']:.2f}",
    )
    add(
        "3 garments, 1 person (s)",
        f"{base['g3']:.3f}",
        f"{opt['g3']:.3f}",
        "baseline one after another",
    )
    add(
        "10 garments, 1 person (s)",
        f"{base['g10']:.3f}",
        f"{opt['g10']:.3f}",
        f"x{base['g10'] / opt['g10']:.2f}",
    )
    for b in (1, 2, 4, 8, 16):
        add(
            f"throughput batch {b} (try-ons/s)",
            f"{1 / base['t20']:.2f}",
            f"{opt[f'tput{b}']:.2f}",
            f"{achieved(opt[f'tput{b}']):.0f}% of matmul peak",
        )
    for key in (
        "garmentnet_ms",
        "tryonnet_ms",
        "step_as_run_ms",
        "vae_decode_ms",
        "encoders_ms",
        "host_to_pil_ms",
        "host_png_ms",
    ):
        add(
            f"phase {key}",
            f"{base_phases[key]:.1f}",
            f"{opt_phases[key]:.1f}",
            "batch 1, per step" if ("net" in key or "step" in key) else "",
        )
    for key in ("garmentnet_tflop", "tryonnet_tflop"):
        add(f"FLOPs {key}", f"{base_flops[key]:.2f}", f"{opt_flops[key]:.2f}", "one step, batch 1")
    for key in ("encode", "diffusion", "decode", "to_pil_and_rest", "png", "total"):
        add(
            f"one try-on split {key} (ms)",
            f"{base['split20_ms'][key]:.1f}",
            f"{opt['split20_ms'][key]:.1f}",
            "20 steps, median of 3",
        )
    for gen in ("gen0", "gen1", "gen2"):
        add(
            f"gc {gen} collections during the measurements",
            base_gc.summary()[gen],
            opt_gc.summary()[gen],
            "optimised: start-up objects frozen, as the service does",
        )
    add(
        "gc full collection after warm-up (ms)",
        "-",
        f"{full_collection_ms:.0f}",
        f"{frozen} objects frozen; what a full collection costs without the freeze",
    )
    add("peak memory batch 1 (GiB)", f"{base['peak_gib_b1']:.1f}", f"{opt['peak_gib_b1']:.1f}")
    add(
        "start-up (s)",
        f"{build_s:.1f} build",
        f"{warm_s:.1f} optimise+warm-up",
        "random weights, no load",
    )
    add("step noise rel L2 vs baseline", "-", f"{step_rel:.2e}", "target < 1e-2")
    once_note = "opt-in garment_features_once (changes the output)"
    add(
        "one try-on, 20 steps, GarmentNet once (s)",
        f"{base['t20']:.3f}",
        f"{once['t20']:.3f}",
        once_note,
    )
    add("10 garments, GarmentNet once (s)", f"{base['g10']:.3f}", f"{once['g10']:.3f}", once_note)
    add(
        "throughput batch 8, GarmentNet once",
        f"{1 / base['t20']:.2f}",
        f"{once['tput8']:.2f}",
        once_note,
    )
    add("GarmentNet once: image vs default max abs / PSNR", "-", once["diff"], once_note)
    cache_note = "opt-in garment feature cache, every garment cached (same output)"
    add(
        "one try-on, 20 steps, repeat garment (s)",
        f"{base['t20']:.3f}",
        f"{repeat['t20']:.3f}",
        cache_note,
    )
    add(
        "10 garments, repeat garments (s)", f"{base['g10']:.3f}", f"{repeat['g10']:.3f}", cache_note
    )
    add("repeat garment: image vs default max abs / PSNR", "-", repeat["diff"], cache_note)
    add(
        "final image max abs / PSNR (8-bit)",
        "-",
        f"{max_abs} / {image_psnr:.1f} dB",
        "20 steps, same seed",
    )

    details.update(
        {
            "card": card,
            "torch": torch.__version__,
            "dtype": args.dtype,
            "matmul_tflops": rates,
            "baseline": {k: v for k, v in base.items() if not k.startswith("png")},
            "optimised": {k: v for k, v in opt.items() if not k.startswith("png")},
            "step_rel_l2": step_rel,
            "psnr": image_psnr,
            "max_abs": max_abs,
            "status": [s.line() for s in optimised.optimization_status],
        }
    )
    (OUT / "gpu_bench.json").write_text(json.dumps(details, indent=2, default=str))
    table = [
        f"card: {card} | torch {torch.__version__} | {args.dtype} | matmul peak {peak:.0f} TFLOP/s",
        "| measure | baseline | optimised | note |",
        "| --- | --- | --- | --- |",
    ]
    table += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    (OUT / "gpu_bench.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


def smoke_model():
    """The tiny model on the CPU: checks this script's logic where no GPU is at hand."""
    import tempfile

    from vton.engine.checkpoint import load_model
    from vton.engine.tiny import make_tiny_model

    return load_model(make_tiny_model(Path(tempfile.mkdtemp()) / "tiny"))


PERSONS: list = []
GARMENTS: list = []

if __name__ == "__main__":
    main()
