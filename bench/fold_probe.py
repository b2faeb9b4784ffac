"""TryonNet's self-attention with and without `fold_zero_garment_keys`, one SDXL-size attention
module at each of its two token levels (1024x768: 3072 tokens at width 640, 768 at 1280),
guidance batch [uncond B, cond B], fp16: the output difference and the time per call, eager and
under Inductor (the blocks are compiled in the service, so the cuDNN op with its log-sum-exp
must compile too). Per step, TryonNet has 10 such attentions at the first level, 60 at the
second.

PYTHONPATH=src:. python bench/fold_probe.py   (GPU; writes $OUT/fold_probe.json)
"""

from __future__ import annotations

import json

import torch
from diffusers.models.attention_processor import Attention

from bench.attention_probe import OUT, kernel_ms
from vton.engine.attention import (
    GarmentFeatureBank,
    TryonSelfAttentionProcessor,
    zero_key_folding_problem,
)

LEVELS = {"3072 tokens x 640": (3072, 640, 10), "768 tokens x 1280": (768, 1280, 20)}
BLOCKS_PER_STEP = {"3072 tokens x 640": 10, "768 tokens x 1280": 60}


def attention_module(width: int, heads: int, bank: GarmentFeatureBank) -> Attention:
    torch.manual_seed(0)
    attn = Attention(width, heads=heads, dim_head=width // heads)
    attn.set_processor(TryonSelfAttentionProcessor(bank, bank.slot("blk")))
    return attn.to("cuda", torch.float16).eval()


@torch.no_grad()
def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    torch._dynamo.config.suppress_errors = False  # a compile failure must show here
    card = torch.cuda.get_device_name()
    problem = zero_key_folding_problem(torch.device("cuda"), torch.float16)
    print(f"card {card} | torch {torch.__version__} | fold check: {problem or 'ok'}", flush=True)
    results: dict[str, dict[str, float]] = {}
    for batch in (1, 8):
        for level, (tokens, width, heads) in LEVELS.items():
            bank = GarmentFeatureBank()
            attn = attention_module(width, heads, bank)
            processor = attn.processor
            person = torch.randn(2 * batch, tokens, width, device="cuda", dtype=torch.float16)
            bank.slot("blk").tensor = torch.randn(
                batch, tokens, width, device="cuda", dtype=torch.float16
            )
            compiled = torch.compile(attn)
            row: dict[str, float] = {}
            outputs = {}
            for fold in (False, True):
                processor.fold_zero_garment_keys = fold
                name = "folded" if fold else "unfolded"
                outputs[name] = attn(person).float()
                outputs[f"{name} compiled"] = compiled(person).float()
                row[f"{name} eager ms"] = kernel_ms(lambda f=attn, x=person: f(x))
                row[f"{name} compiled ms"] = kernel_ms(lambda f=compiled, x=person: f(x))
            reference = outputs["unfolded"]
            scale = reference.abs().max().item()
            for name, out in outputs.items():
                row[f"{name} max abs"] = (out - reference).abs().max().item()
            row["reference max abs value"] = scale
            row["saved per step ms (compiled)"] = BLOCKS_PER_STEP[level] * (
                row["unfolded compiled ms"] - row["folded compiled ms"]
            )
            key = f"{level}, batch {batch}"
            results[key] = row
            print(key, json.dumps(row), flush=True)
            torch._dynamo.reset()
    (OUT / "fold_probe.json").write_text(json.dumps({"card": card, "results": results}, indent=2))
    print(f"\ncard: {card}")
    print(
        "| shape | unfolded eager | folded eager | unfolded compiled | folded compiled | "
        "max abs folded vs unfolded (compiled) | saved per step (compiled) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for key, r in results.items():
        print(
            f"| {key} | {r['unfolded eager ms']:.3f} | {r['folded eager ms']:.3f} | "
            f"{r['unfolded compiled ms']:.3f} | {r['folded compiled ms']:.3f} | "
            f"{r['folded compiled max abs']:.2e} | {r['saved per step ms (compiled)']:.2f} ms |"
        )


if __name__ == "__main__":
    main()
