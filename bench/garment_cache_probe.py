"""The opt-in garment feature cache on the full-size model: one try-on and 3 garments on one
person with the default engine and with every garment's GarmentNet features already cached (a
repeat garment), one process, the same weights and inputs; CUDA graphs, not compiled (so the
run stays short). Also the first, cache-filling try-on and the images against the default's.

PYTHONPATH=src:. python bench/garment_cache_probe.py   (GPU; BENCH_SMOKE=1 for a CPU check)
"""

from __future__ import annotations

import json

import torch

from bench.fullsize import build_fullsize_model
from bench.gpu_bench import (
    DEVICE,
    OUT,
    log,
    make_sample,
    peak_gib,
    psnr,
    smoke_model,
    timed,
    tryon,
    use_noise_inputs,
    with_garment_cache,
)
from bench.gpu_bench import H as HEIGHT
from bench.gpu_bench import W as WIDTH
from vton.engine.optimize import EngineOptimizations
from vton.engine.pipeline import TryOnPipeline
from vton.engine.runtime import quiet_model_libraries
from vton.engine.types import DiffusionOptions

CACHE_BYTES = 24 << 30


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    quiet_model_libraries()
    smoke = DEVICE != "cuda"
    card = "cpu smoke test" if smoke else torch.cuda.get_device_name()
    model = smoke_model() if smoke else build_fullsize_model(torch.float16)
    use_noise_inputs(persons=2, garments=4)
    default = TryOnPipeline(model, EngineOptimizations(compile=False))
    default.warm_up((1, 3), DiffusionOptions(steps=1, height=HEIGHT, width=WIDTH))
    cached = with_garment_cache(default, CACHE_BYTES)
    one = [make_sample(0, 0, keyed=True)]
    three = [make_sample(1, g, keyed=True, seed=g) for g in (1, 2, 3)]
    rows: dict[str, dict[str, object]] = {}
    for label, batch in (("one try-on", one), ("3 garments, 1 person", three)):
        expected = tryon(default, batch, 20)
        r: dict[str, object] = {"default_s": timed(lambda b=batch: tryon(default, b, 20), 3)}
        if DEVICE == "cuda":
            torch.cuda.reset_peak_memory_stats()
        first = timed(lambda b=batch: tryon(cached, b, 20), repeats=1, warmup=0)
        r["first_cached_s"], r["peak_gib_filling"] = first, round(peak_gib(), 2)
        r["repeat_s"] = timed(lambda b=batch: tryon(cached, b, 20), repeats=3)
        got = tryon(cached, batch, 20)
        r["images_vs_default"] = [
            "{} / {:.1f} dB".format(*psnr(a, b)) for a, b in zip(expected, got, strict=True)
        ]
        rows[label] = r
        log(f"[{label}] {r}")
    r_cache = {"garments": len(cached.garment_cache), "gib": cached.garment_cache.lru.bytes / 2**30}
    log(f"cache after the runs: {r_cache}")
    (OUT / "garment_cache_probe.json").write_text(json.dumps({"rows": rows, "cache": r_cache}))
    log(f"\ncard: {card} | torch {torch.__version__} | compile False | 20 steps")
    log("| case | default (s) | first, filling (s) | repeat garment (s) | images vs default |")
    log("| --- | --- | --- | --- | --- |")
    for label, r in rows.items():
        log(
            f"| {label} | {r['default_s']:.3f} | {r['first_cached_s']:.3f} | "
            f"{r['repeat_s']:.3f} | {', '.join(r['images_vs_default'])} |"  # type: ignore[arg-type]
        )


if __name__ == "__main__":
    main()
