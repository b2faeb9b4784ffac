"""Every cross-attention's keys and values of a UNet in a few batched matmuls per step.

Each cross-attention projects the same context (the text tokens; in TryonNet also the IP image
tokens) with its own k and v weights: about 420 small GEMMs per step in the two UNets. Measured
with cuBLAS on an H100 (`bench/autotune_probe.py`), one of them takes 9 us at batch 1
(154 x 2048 x 1280, mostly reading its 5 MB weight) and 30 us at batch 8. Stacked by kind
(text key, text value, image key, image value) and shape, the weights serve one batched matmul
per stack that computes every block's keys or values at once. A hook before the UNet's forward
fills each processor's `projected` slots, one after it empties them. The layers keep their
weights as views of the stacks, so nothing is stored twice and per-layer projection (the
reference) computes with the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from torch import nn

from vton.engine.attention import (
    GarmentCrossAttentionProcessor,
    ProjectedContext,
    TryonCrossAttentionProcessor,
)


@dataclass(frozen=True)
class _Stack:
    """Layers of one kind and shape: their weights stacked, and where each one's output goes."""

    source: str  # "text" or "image": which part of the context the layers project
    weight: torch.Tensor  # (layers, out, in)
    targets: tuple[tuple[ProjectedContext, str], ...]  # (slots, field) per layer


def batch_cross_projections(unet: UNet2DConditionModel) -> int:
    """Installs the batched projection on `unet` in place; returns how many cross-attentions
    it serves. TryonNet's processors read their slots; GarmentNet's stock processors are
    replaced by GarmentCrossAttentionProcessor (the same arithmetic, reading the slots)."""
    members: dict[tuple[str, str, torch.Size], list[tuple[nn.Linear, ProjectedContext]]] = {}
    image_tokens = 0
    for module in unet.modules():
        if not isinstance(module, Attention) or not module.is_cross_attention:
            continue
        if module.to_k.bias is not None:  # SDXL's have none; a biased layer stays per-layer
            continue
        processor = module.processor
        if isinstance(processor, TryonCrossAttentionProcessor):
            image_tokens = processor.num_tokens
            layers = {
                ("text", "key"): module.to_k,
                ("text", "value"): module.to_v,
                ("image", "ip_key"): processor.to_k_ip[0],
                ("image", "ip_value"): processor.to_v_ip[0],
            }
        elif isinstance(processor, AttnProcessor2_0):
            processor = GarmentCrossAttentionProcessor()
            module.set_processor(processor)
            layers = {("text", "key"): module.to_k, ("text", "value"): module.to_v}
        else:
            continue
        for (source, field), layer in layers.items():
            key = (source, field, layer.weight.shape)
            members.setdefault(key, []).append((layer, processor.projected))
    stacks = [_stack(source, field, group) for (source, field, _), group in members.items()]
    if stacks:
        unet.register_forward_pre_hook(partial(_project, stacks, image_tokens), with_kwargs=True)
        unet.register_forward_hook(partial(_clear, stacks))
    return len({id(slots) for stack in stacks for slots, _ in stack.targets})


def _stack(source: str, field: str, group: list[tuple[nn.Linear, ProjectedContext]]) -> _Stack:
    weight = torch.stack([layer.weight.detach() for layer, _ in group])
    for i, (layer, _) in enumerate(group):
        layer.weight = nn.Parameter(weight[i], requires_grad=False)
    return _Stack(source, weight, tuple((slots, field) for _, slots in group))


def _project(
    stacks: list[_Stack],
    image_tokens: int,
    _module: nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    context = kwargs.get("encoder_hidden_states", args[2] if len(args) > 2 else None)
    if context is None:
        return
    split = context.shape[1] - image_tokens
    parts = {"text": context[:, :split], "image": context[:, split:]}
    for stack in stacks:
        tokens = parts[stack.source]
        layers = len(stack.targets)
        rows = tokens.reshape(1, -1, tokens.shape[-1]).expand(layers, -1, -1)
        out = torch.bmm(rows, stack.weight.transpose(1, 2))  # (layers, batch * tokens, out)
        out = out.view(layers, tokens.shape[0], tokens.shape[1], -1)
        for i, (slots, field) in enumerate(stack.targets):
            # detached: the same memory, but no view base, whose sizes Dynamo would trace as
            # extra symbols in every block graph (measured: a slower trace on each start)
            setattr(slots, field, out[i].detach())


def _clear(stacks: list[_Stack], *_: object) -> None:
    for stack in stacks:
        for slots, field in stack.targets:
            setattr(slots, field, None)
