"""What Inductor's max-autotune (Triton GEMM templates, epilogue fusion) would buy one SDXL
transformer block, the unit that dominates a step: eager, regional compile as the engine does
it (default mode), and max-autotune, each replayed from a CUDA graph so launches do not count.

Shapes: TryonNet's level-3 block (1280 channels, 32x24 = 768 tokens) and level-2 block (640
channels, 64x48 = 3072 tokens) at batch 2 (one try-on with guidance) and 16 (batch 8); text
context of 77 tokens of 2048. Stock diffusers attention processors (self-attention over the
block's own tokens): the GEMMs, norms and GEGLU are those of the real blocks.

PYTHONPATH=src:. python bench/autotune_probe.py   (GPU; on a CPU it runs eager only, as a check)
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import time
from pathlib import Path

import torch
from diffusers.models.attention import BasicTransformerBlock

OUT = Path(os.environ.get("OUT", "var/bench"))
CUDA = torch.cuda.is_available()
LEVELS = {"level 3": (1280, 20, 768), "level 2": (640, 10, 3072)}  # channels, heads, tokens
BATCHES = (2, 16)


def block(channels: int, heads: int, dtype: torch.dtype, device: str) -> BasicTransformerBlock:
    with torch.device(device):
        module = BasicTransformerBlock(
            channels, heads, channels // heads, cross_attention_dim=2048, activation_fn="geglu"
        )
    return module.to(dtype).eval().requires_grad_(False)


def graphed_ms(fn, args: tuple[torch.Tensor, ...], repeats: int = 50) -> float:
    """Median milliseconds of one replay of `fn(*args)` captured in a CUDA graph."""
    for _ in range(3):
        fn(*args)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn(*args)
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    device, dtype = ("cuda", torch.float16) if CUDA else ("cpu", torch.float32)
    torch.manual_seed(0)
    results: dict[str, dict[str, float]] = {}
    for level, (channels, heads, tokens) in LEVELS.items():
        eager = block(channels, heads, dtype, device)
        variants = {"eager": eager}
        if CUDA:
            # copies with the same weights: each compiled variant has its own Dynamo cache;
            # static shapes, so each batch size gets its own tuned kernels
            variants["compile (default)"] = torch.compile(copy.deepcopy(eager), dynamic=False)
            variants["compile max-autotune"] = torch.compile(
                copy.deepcopy(eager), mode="max-autotune-no-cudagraphs", dynamic=False
            )
        for batch in BATCHES if CUDA else (2,):
            x = torch.randn(batch, tokens, channels, device=device, dtype=dtype)
            context = torch.randn(batch, 77, 2048, device=device, dtype=dtype)
            reference = eager(x, encoder_hidden_states=context).float()
            row: dict[str, float] = {}
            for name, fn in variants.items():
                start = time.perf_counter()
                with torch.no_grad():
                    got = fn(x, encoder_hidden_states=context).float()
                    first_s = time.perf_counter() - start
                    rel = float((got - reference).norm() / reference.norm())

                    def run(x=x, context=context, fn=fn):
                        return fn(x, encoder_hidden_states=context)

                    row[name] = graphed_ms(run, ()) if CUDA else first_s * 1e3
                print(
                    f"{level} b{batch} {name}: {row[name]:.3f} ms (first call {first_s:.1f}s,"
                    f" rel L2 vs eager {rel:.1e})",
                    flush=True,
                )
            results[f"{level} batch {batch}"] = row
    (OUT / "autotune_probe.json").write_text(json.dumps(results, indent=2))
    card = torch.cuda.get_device_name() if CUDA else "cpu check"
    names = list(next(iter(results.values())))
    print(f"\ncard: {card} | torch {torch.__version__} | one transformer block, graphed, ms")
    print("| shape | " + " | ".join(names) + " |")
    print("| --- |" + " --- |" * len(names))
    for shape, row in results.items():
        print(f"| {shape} | " + " | ".join(f"{row[n]:.3f}" for n in names) + " |")


if __name__ == "__main__":
    main()
