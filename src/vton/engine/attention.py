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

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention
from torch import nn


def attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, heads: int) -> torch.Tensor:
    """Multi-head scaled dot-product attention on (batch, tokens, heads * head_dim) tensors."""
    batch, _, inner = query.shape
    head_dim = inner // heads
    q, k, v = (x.view(batch, -1, heads, head_dim).transpose(1, 2) for x in (query, key, value))
    out = F.scaled_dot_product_attention(q, k, v)
    return out.transpose(1, 2).reshape(batch, -1, inner)


def project_out(attn: Attention, hidden_states: torch.Tensor) -> torch.Tensor:
    return attn.to_out[1](attn.to_out[0](hidden_states))


class GarmentFeatureBank:
    """Carries one step's garment features from GarmentNet to TryonNet.

    `features[name]` holds (batch, tokens, channels) for the B garments of the batch (conditional
    rows only); `guidance` says whether TryonNet's batch is [uncond B, cond B].
    """

    def __init__(self) -> None:
        self.features: dict[str, torch.Tensor] = {}
        self.guidance: bool = True
        # Row i of the batch uses garment `index[i]` (GarmentNet ran once per distinct garment).
        self.index: torch.Tensor | None = None

    def clear(self) -> None:
        self.features.clear()
        self.index = None


class GarmentCaptureProcessor:
    """GarmentNet self-attention: records its input under `name`, then attends as usual."""

    def __init__(self, bank: GarmentFeatureBank, name: str, capture_only: bool = False) -> None:
        self.bank = bank
        self.name = name
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
        self.bank.features[self.name] = hidden_states
        if self.capture_only:
            return torch.zeros_like(hidden_states)
        query = attn.to_q(hidden_states)
        key = attn.to_k(hidden_states)
        value = attn.to_v(hidden_states)
        return project_out(attn, attend(query, key, value, attn.heads))


def garment_tokens_for(
    person: torch.Tensor, garment: torch.Tensor, guidance: bool, index: torch.Tensor | None = None
) -> torch.Tensor:
    """The garment tokens for each row of TryonNet's batch: zeros for the unconditional half."""
    if index is not None:
        garment = garment.index_select(0, index)
    if guidance:
        garment = torch.cat([torch.zeros_like(garment), garment], dim=0)
    if garment.shape[0] != person.shape[0]:
        raise ValueError(
            f"garment features for {garment.shape[0]} rows, TryonNet batch has {person.shape[0]}"
        )
    return garment.to(person.dtype)


class TryonSelfAttentionProcessor:
    """TryonNet self-attention over person + garment tokens, queries from the person only.

    `person_queries_only=False` computes the reference's way (queries for the garment tokens
    too, rows then dropped): the same result with more work, kept for the baseline benchmark.
    """

    def __init__(
        self, bank: GarmentFeatureBank, name: str, person_queries_only: bool = True
    ) -> None:
        self.bank = bank
        self.name = name
        self.person_queries_only = person_queries_only

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        **_: object,
    ) -> torch.Tensor:
        bank = self.bank
        garment = garment_tokens_for(
            hidden_states, bank.features[self.name], bank.guidance, bank.index
        )
        context = torch.cat([hidden_states, garment], dim=1)
        queries = hidden_states if self.person_queries_only else context
        out = attend(attn.to_q(queries), attn.to_k(context), attn.to_v(context), attn.heads)
        return project_out(attn, out[:, : hidden_states.shape[1]])


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

    def __call__(  # type: ignore[override]
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
        query = attn.to_q(hidden_states)
        out = attend(query, attn.to_k(text), attn.to_v(text), attn.heads)
        ip = attend(query, self.to_k_ip[0](image), self.to_v_ip[0](image), attn.heads)
        return project_out(attn, out + self.scale * ip)
