"""IDM-VTON's attention processors, plugged into stock diffusers UNets.

- GarmentNet's self-attentions record their input (the output of the block's norm1): the garment
  features, keyed by the module name.
- TryonNet's self-attentions attend over [person tokens, garment tokens of the same-named block]
  with queries from the person tokens only; for the unconditional half of a guidance batch the
  garment tokens are zeros (the reference does this, the trained weights expect it).
- TryonNet's cross-attentions add an IP-Adapter attention over the image tokens, which follow the
  text tokens in the context: softmax(q k_text) v_text + scale * softmax(q k_ip) v_ip, summed
  before the output projection.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention
from torch import nn


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(batch, tokens, heads * head_dim) -> (batch, heads, tokens, head_dim), a view."""
    batch, tokens, inner = x.shape
    return x.view(batch, tokens, heads, inner // heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(batch, heads, tokens, head_dim) -> (batch, tokens, heads * head_dim)."""
    batch, heads, tokens, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, tokens, heads * head_dim)


def attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, heads: int) -> torch.Tensor:
    """Multi-head scaled dot-product attention on (batch, tokens, heads * head_dim) tensors."""
    q, k, v = (split_heads(x, heads) for x in (query, key, value))
    return merge_heads(F.scaled_dot_product_attention(q, k, v))


def project_out(attn: Attention, hidden_states: torch.Tensor) -> torch.Tensor:
    return attn.to_out[1](attn.to_out[0](hidden_states))


def garment_feature_order(unet: UNet2DConditionModel) -> list[str]:
    """Names of GarmentNet's self-attentions in forward order (down, mid, up blocks)."""
    blocks = [*unet.down_blocks, unet.mid_block, *unet.up_blocks]
    names = {module: name for name, module in unet.named_modules()}
    order = []
    for block in blocks:
        for attention in getattr(block, "attentions", None) or []:
            for transformer in attention.transformer_blocks:
                order.append(names[transformer.attn1])
    return order


class GarmentFeatureSlot:
    """One GarmentNet self-attention's input for this step, read by TryonNet's same-named block.

    Processors hold their slot rather than a name: a compiled transformer block then reads a
    tensor attribute (a graph input) instead of a per-block dictionary key, so one compiled graph
    serves every block of the same shape instead of one graph per block.
    """

    __slots__ = ("tensor",)

    def __init__(self) -> None:
        self.tensor: torch.Tensor | None = None


class GarmentFeatureBank:
    """Carries one step's garment features from GarmentNet to TryonNet.

    `slots[name]` holds (batch, tokens, channels) for the B garments of the batch (conditional
    rows only); `guidance` says whether TryonNet's batch is [uncond B, cond B].
    """

    def __init__(self) -> None:
        self.slots: dict[str, GarmentFeatureSlot] = {}
        self.guidance: bool = True

    def slot(self, name: str) -> GarmentFeatureSlot:
        return self.slots.setdefault(name, GarmentFeatureSlot())

    def add_slots(self, unet: UNet2DConditionModel) -> None:
        """One slot per self-attention of `unet`, created in forward order (the order of
        `features`), whichever of the two UNets is installed first."""
        for name in garment_feature_order(unet):
            self.slot(name)

    @property
    def features(self) -> Mapping[str, torch.Tensor]:
        """The recorded features by block name in forward order (read-only: set `features` or a
        slot's tensor to change them)."""
        return MappingProxyType(
            {name: s.tensor for name, s in self.slots.items() if s.tensor is not None}
        )

    @features.setter
    def features(self, features: Mapping[str, torch.Tensor]) -> None:
        self.clear()
        for name, tensor in features.items():
            self.slot(name).tensor = tensor

    def clear(self) -> None:
        for s in self.slots.values():
            s.tensor = None


class GarmentCaptureProcessor:
    """GarmentNet self-attention: records its input in its slot, then attends as usual."""

    def __init__(self, slot: GarmentFeatureSlot, capture_only: bool = False) -> None:
        self.slot = slot
        # The last block's attention output is never used when GarmentNet is truncated.
        self.capture_only = capture_only

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        **_: object,
    ) -> torch.Tensor:
        self.slot.tensor = hidden_states
        if self.capture_only:
            return torch.zeros_like(hidden_states)
        query = attn.to_q(hidden_states)
        key = attn.to_k(hidden_states)
        value = attn.to_v(hidden_states)
        return project_out(attn, attend(query, key, value, attn.heads))


def garment_tokens_for(person: torch.Tensor, garment: torch.Tensor, guidance: bool) -> torch.Tensor:
    """The garment tokens for each row of TryonNet's batch: zeros for the unconditional half."""
    garment = garment.to(person.dtype)
    if guidance:
        garment = torch.cat([torch.zeros_like(garment), garment], dim=0)
    if garment.shape[0] != person.shape[0]:
        raise ValueError(
            f"garment features for {garment.shape[0]} rows, TryonNet batch has {person.shape[0]}"
        )
    return garment


class TryonSelfAttentionProcessor:
    """TryonNet self-attention over person + garment tokens, queries from the person only.

    `person_queries_only=False` computes the reference's way (queries for the garment tokens
    too, rows then dropped): the same result with more work, kept for the baseline benchmark.
    """

    def __init__(
        self,
        bank: GarmentFeatureBank,
        slot: GarmentFeatureSlot,
        person_queries_only: bool = True,
    ) -> None:
        self.bank = bank
        self.slot = slot
        self.person_queries_only = person_queries_only

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        **_: object,
    ) -> torch.Tensor:
        features = self.slot.tensor
        if features is None:
            raise RuntimeError("TryonNet ran before GarmentNet recorded this step's features")
        garment = garment_tokens_for(hidden_states, features, self.bank.guidance)
        context = torch.cat([hidden_states, garment], dim=1)
        queries = hidden_states if self.person_queries_only else context
        out = attend(attn.to_q(queries), attn.to_k(context), attn.to_v(context), attn.heads)
        return project_out(attn, out[:, : hidden_states.shape[1]])


class ProjectedContext:
    """One cross-attention's keys and values of this step's context when they were projected
    for every block of the UNet at once (cross_projections.py); None while the processor
    projects them itself. Read as tensor attributes, like GarmentFeatureSlot, so a compiled
    block takes them as graph inputs."""

    __slots__ = ("ip_key", "ip_value", "key", "value")

    def __init__(self) -> None:
        self.key: torch.Tensor | None = None
        self.value: torch.Tensor | None = None
        self.ip_key: torch.Tensor | None = None
        self.ip_value: torch.Tensor | None = None


def key_value(
    key: torch.Tensor | None,
    value: torch.Tensor | None,
    to_k: nn.Module,
    to_v: nn.Module,
    tokens: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The projected keys and values when there are some, else the layers' projection of
    `tokens`."""
    if key is None or value is None:
        return to_k(tokens), to_v(tokens)
    return key, value


class GarmentCrossAttentionProcessor:
    """GarmentNet cross-attention over the garment's text tokens: diffusers' stock arithmetic
    (SDPA, no residual or norms in SDXL's blocks), taking the keys and values from `projected`
    when they were projected for all blocks at once."""

    def __init__(self) -> None:
        self.projected = ProjectedContext()

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        **_: object,  # attention_mask: always None in these UNets
    ) -> torch.Tensor:
        if encoder_hidden_states is None:
            raise ValueError("GarmentNet cross-attention needs the text token context")
        p = self.projected
        key, value = key_value(p.key, p.value, attn.to_k, attn.to_v, encoder_hidden_states)
        return project_out(attn, attend(attn.to_q(hidden_states), key, value, attn.heads))


class TryonCrossAttentionProcessor(nn.Module):
    """TryonNet cross-attention: text attention plus IP-Adapter image attention.

    Holds the IP weights as diffusers' `IPAdapterAttnProcessor2_0` does (`to_k_ip.0.weight`), so
    the checkpoint's `to_k_ip.weight` keys convert onto it by adding `.0`.
    """

    def __init__(
        self, hidden_size: int, cross_attention_dim: int, num_tokens: int, scale: float = 1.0
    ) -> None:
        super().__init__()
        self.num_tokens = num_tokens
        self.scale = scale
        self.to_k_ip = nn.ModuleList([nn.Linear(cross_attention_dim, hidden_size, bias=False)])
        self.to_v_ip = nn.ModuleList([nn.Linear(cross_attention_dim, hidden_size, bias=False)])
        self.projected = ProjectedContext()

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        **_: object,
    ) -> torch.Tensor:
        if encoder_hidden_states is None:
            raise ValueError("TryonNet cross-attention needs the text + image token context")
        split = encoder_hidden_states.shape[1] - self.num_tokens
        text, image = encoder_hidden_states[:, :split], encoder_hidden_states[:, split:]
        p = self.projected
        key, value = key_value(p.key, p.value, attn.to_k, attn.to_v, text)
        ip_key, ip_value = key_value(p.ip_key, p.ip_value, self.to_k_ip[0], self.to_v_ip[0], image)
        query = attn.to_q(hidden_states)
        out = attend(query, key, value, attn.heads)
        ip = attend(query, ip_key, ip_value, attn.heads)
        return project_out(attn, out + self.scale * ip)
