"""Attention kernels at IDM-VTON's shapes: torch SDPA (its default choice, cuDNN, flash) against
xFormers' memory_efficient_attention (its own dispatch), fp16, same inputs.

Shapes per step (1024x768): TryonNet self-attention at level 2 (10 heads, 3072 person queries
over 6144 person + garment keys) and level 3 (20 heads, 768 over 1536), batch 2B with guidance;
GarmentNet self-attention (3072 over 3072, 768 over 768), batch B. Inputs come as the engine's
processors make them: (batch, tokens, heads * 64), viewed per head (SDPA takes the transposed
view, xFormers the (batch, tokens, heads, 64) view as is).

PYTHONPATH=src:. python bench/attention_probe.py   (GPU; xFormers installed beside torch)
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

OUT = Path(os.environ.get("OUT", "var/bench"))
SHAPES = {  # name: (rows per sample, heads, queries, keys)
    "TryonNet level 2": (2, 10, 3072, 6144),
    "TryonNet level 3": (2, 20, 768, 1536),
    "GarmentNet level 2": (1, 10, 3072, 3072),
    "GarmentNet level 3": (1, 20, 768, 768),
}


def kernel_ms(fn, repeats: int = 30, inner: int = 10) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / inner)
    return statistics.median(times)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        import xformers
        import xformers.ops as xops

        xformers_version = xformers.__version__
    except ImportError as exc:
        xops, xformers_version = None, f"not importable: {exc}"
    print(
        f"card {torch.cuda.get_device_name()} | torch {torch.__version__} | xformers "
        f"{xformers_version}",
        flush=True,
    )
    results: dict[str, dict[str, float | str]] = {}
    for batch in (1, 8):
        for name, (rows, heads, queries, keys) in SHAPES.items():
            b = rows * batch
            q, k, v = (
                torch.randn(b, n, heads * 64, device="cuda", dtype=torch.float16)
                for n in (queries, keys, keys)
            )
            per_head = [x.view(b, -1, heads, 64) for x in (q, k, v)]
            sdpa_in = [x.transpose(1, 2) for x in per_head]
            reference = F.scaled_dot_product_attention(*sdpa_in).transpose(1, 2)
            row: dict[str, float | str] = {}
            variants = {
                "sdpa default": None,
                "sdpa cudnn": SDPBackend.CUDNN_ATTENTION,
                "sdpa flash": SDPBackend.FLASH_ATTENTION,
            }
            for label, backend in variants.items():

                def run(backend=backend, sdpa_in=sdpa_in):
                    if backend is None:
                        return F.scaled_dot_product_attention(*sdpa_in)
                    with sdpa_kernel(backend):
                        return F.scaled_dot_product_attention(*sdpa_in)

                row[label] = kernel_ms(run)
            if xops is not None:
                try:
                    got = xops.memory_efficient_attention(*per_head)
                    row["xformers op"] = xops.fmha._dispatch_fw(
                        xops.fmha.Inputs(*per_head), False
                    ).NAME
                    row["xformers max abs"] = float((got - reference).abs().max())
                    row["xformers"] = kernel_ms(
                        lambda per_head=per_head: xops.memory_efficient_attention(*per_head)
                    )
                except Exception as exc:  # report, keep the other rows
                    row["xformers"] = f"failed: {exc!r}"[:200]
            key = f"{name}, batch {batch}"
            results[key] = row
            print(key, row, flush=True)
    (OUT / "attention_probe.json").write_text(json.dumps(results, indent=2))
    print("\n| shape | sdpa default | sdpa cudnn | sdpa flash | xformers (op) |")
    print("| --- | --- | --- | --- | --- |")
    for key, row in results.items():
        x = row.get("xformers", "-")
        x = f"{x:.3f} ({row.get('xformers op')})" if isinstance(x, float) else x
        print(
            f"| {key} | {row['sdpa default']:.3f} | {row['sdpa cudnn']:.3f} | "
            f"{row['sdpa flash']:.3f} | {x} |"
        )


if __name__ == "__main__":
    main()
