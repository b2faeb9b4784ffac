"""The opt-in garment_features_once mode against the default, same process and inputs: the graphed
step with and without GarmentNet (batch 1 and 8), one 20-step try-on, and the image difference.

PYTHONPATH=src:. python bench/garment_once_probe.py   (GPU; BENCH_SMOKE=1 for a CPU check)
"""

from __future__ import annotations

import torch

from bench import gpu_bench
from bench.fullsize import build_fullsize_model
from bench.gpu_bench import (
    DEVICE,
    full_step,
    log,
    make_sample,
    noise_image,
    one_step_inputs,
    psnr,
    smoke_model,
    step_input,
    timed,
    tryon,
    with_garment_features_once,
)
from vton.engine.optimize import EngineOptimizations
from vton.engine.pipeline import TryOnPipeline
from vton.engine.runtime import quiet_model_libraries
from vton.engine.step import run_garment_net


def main() -> None:
    quiet_model_libraries()
    smoke = DEVICE != "cuda"
    model = smoke_model() if smoke else build_fullsize_model(torch.float16)
    gpu_bench.PERSONS[:] = [
        (noise_image(10 + i), noise_image(100 + i, "L"), noise_image(200 + i)) for i in range(4)
    ]
    gpu_bench.GARMENTS[:] = [noise_image(300 + i) for i in range(8)]
    default = TryOnPipeline(model, EngineOptimizations())
    once = with_garment_features_once(default)
    rows: list[tuple[str, float, float]] = []
    for batch in (1, 8):
        cond, latents = one_step_inputs(default, batch)
        t = torch.tensor(500, device=DEVICE)
        features = run_garment_net(model, t, cond)
        model.bank.clear()

        def tryon_only(c=cond, x=latents, f=features, t=t) -> torch.Tensor:
            return once.networks(step_input(c, x), t, c, True, f)

        rows.append(
            (
                f"graphed step, batch {batch} (ms)",
                timed(lambda c=cond, x=latents: full_step(default, c, x), repeats=10) * 1e3,
                timed(tryon_only, repeats=10) * 1e3,
            )
        )
    one = [make_sample(0, 0, keyed=True)]
    png_default, png_once = tryon(default, one, 20)[0], tryon(once, one, 20)[0]
    rows.append(
        (
            "one try-on, 20 steps (s)",
            timed(lambda: tryon(default, one, 20), repeats=7),
            timed(lambda: tryon(once, one, 20), repeats=7),
        )
    )
    max_abs, image_psnr = psnr(png_default, png_once)
    card = "cpu smoke test" if smoke else torch.cuda.get_device_name()
    log(
        f"\ncard: {card} | torch {torch.__version__} | image vs default: max abs {max_abs}, "
        f"PSNR {image_psnr:.1f} dB"
    )
    log("| measure | default | garment_features_once |\n| --- | --- | --- |")
    for name, a, b in rows:
        log(f"| {name} | {a:.4g} | {b:.4g} |")


if __name__ == "__main__":
    main()
