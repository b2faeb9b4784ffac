"""Fused attention projections: one GEMM where the reference runs two or three on the same tokens.

- Self-attention projects the same tokens to q, k and v: one (3C, C) weight, `attn.to_qkv`.
  TryonNet's self-attention projects the garment tokens to k and v only, with that weight's k/v
  rows (see attention.py).
- Cross-attention projects the text tokens to k and v: `attn.to_kv`. TryonNet's IP-Adapter
  projects the image tokens to its own k and v: `processor.to_kv_ip`.

The original layers keep their weights as views into the fused weight, so nothing is stored twice
and the unfused code paths (the reference) still compute with the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention, FusedAttnProcessor2_0
from torch import nn

from vton.engine.attention import (
    GarmentCaptureProcessor,
    TryonCrossAttentionProcessor,
    TryonSelfAttentionProcessor,
)


def fuse_linears(layers: Sequence[nn.Linear]) -> nn.Linear:
    """One Linear computing `layers` side by side (their outputs concatenated on the last dim).
    Each layer's weight (and bias) becomes a view of the fused one."""
    in_features = {layer.in_features for layer in layers}
    if len(in_features) != 1:
        raise ValueError(f"layers take different input sizes {sorted(in_features)}")
    biased = {layer.bias is not None for layer in layers}
    if len(biased) != 1:
        raise ValueError("some layers have a bias and some do not")
    weight = torch.cat([layer.weight.detach() for layer in layers])
    bias = torch.cat([layer.bias.detach() for layer in layers]) if biased == {True} else None
    with torch.device("meta"):  # no throwaway allocation: the parameters are set below
        fused = nn.Linear(in_features.pop(), weight.shape[0], bias=bias is not None)
    fused.weight = nn.Parameter(weight, requires_grad=False)
    if bias is not None:
        fused.bias = nn.Parameter(bias, requires_grad=False)
    start = 0
    for layer in layers:
        stop = start + layer.out_features
        layer.weight = nn.Parameter(weight[start:stop], requires_grad=False)
        if bias is not None:
            layer.bias = nn.Parameter(bias[start:stop], requires_grad=False)
        start = stop
    return fused


def fuse_attention_projections(unet: UNet2DConditionModel) -> int:
    """Fuses the projections of every attention in `unet` in place; returns how many attentions.

    GarmentNet's stock cross-attention processor is swapped for diffusers' fused one (the same
    arithmetic, reading `attn.to_kv`); vton's processors read the fused layers when present.
    """
    count = 0
    for module in unet.modules():
        if not isinstance(module, Attention):
            continue
        processor = module.processor
        if isinstance(processor, GarmentCaptureProcessor | TryonSelfAttentionProcessor):
            module.to_qkv = fuse_linears([module.to_q, module.to_k, module.to_v])
        elif isinstance(processor, TryonCrossAttentionProcessor):
            module.to_kv = fuse_linears([module.to_k, module.to_v])
            processor.to_kv_ip = fuse_linears([processor.to_k_ip[0], processor.to_v_ip[0]])
        elif module.is_cross_attention:
            module.to_kv = fuse_linears([module.to_k, module.to_v])
            module.set_processor(FusedAttnProcessor2_0())
        else:
            continue
        count += 1
    return count
