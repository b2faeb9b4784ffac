"""The VAE decode of a batch at once against one image per call (what the pipeline does, so the
compiled decoder only ever sees one shape): full-size fp32 VAE (TF32), eager, 1024x768, batch
1, 4 and 8 per call size, median ms and peak memory.

PYTHONPATH=src:. python bench/decode_probe.py   (GPU; writes $OUT/decode_probe.json)
"""

from __future__ import annotations

import json

import torch

from bench.fullsize import build_fullsize_model
from bench.gpu_bench import OUT, log, peak_gib, timed
from vton.engine.conditioning import in_chunks
from vton.engine.optimize import EngineOptimizations
from vton.engine.pipeline import TryOnPipeline
from vton.engine.runtime import quiet_model_libraries


@torch.no_grad()
def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    quiet_model_libraries()
    model = build_fullsize_model(torch.float16)
    TryOnPipeline(model, EngineOptimizations(compile=False, cuda_graphs=False))  # TF32 on
    vae = model.vae
    card = torch.cuda.get_device_name()
    results: dict[str, dict[str, float]] = {}
    for batch in (1, 4, 8):
        latents = torch.randn(batch, 4, 128, 96, device="cuda", dtype=model.vae_dtype)
        row: dict[str, float] = {}
        for per_call in sorted({1, min(4, batch), batch}):
            torch.cuda.reset_peak_memory_stats()

            def decode(per_call=per_call, latents=latents) -> torch.Tensor:
                return in_chunks(latents, lambda c: vae.decode(c).sample, size=per_call)

            row[f"{per_call} per call ms"] = timed(decode, repeats=5) * 1e3
            row[f"{per_call} per call peak GiB"] = peak_gib()
        results[f"batch {batch}"] = row
        log(f"batch {batch}: {json.dumps(row)}")
    (OUT / "decode_probe.json").write_text(json.dumps({"card": card, "results": results}))
    log(f"\ncard: {card}")
    for key, row in results.items():
        log(f"| {key} | " + " | ".join(f"{k}: {v:.1f}" for k, v in row.items()) + " |")


if __name__ == "__main__":
    main()
