"""The TryonNet self-attention rule and the IP cross-attention, on random tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention

from vton.engine.attention import (
    GarmentCaptureProcessor,
    GarmentFeatureBank,
    TryonCrossAttentionProcessor,
    TryonSelfAttentionProcessor,
)


def make_attention(dim: int = 32, heads: int = 2, cross_dim: int | None = None) -> Attention:
    torch.manual_seed(0)
    return Attention(dim, cross_attention_dim=cross_dim, heads=heads, dim_head=dim // heads).eval()


def full_attention(attn: Attention, tokens: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """Plain multi-head attention written out, with the softmax explicit."""
    b, heads = tokens.shape[0], attn.heads

    def split(x: torch.Tensor) -> torch.Tensor:
        return x.view(b, x.shape[1], heads, -1).transpose(1, 2)

    q, k, v = split(attn.to_q(tokens)), split(attn.to_k(context)), split(attn.to_v(context))
    weights = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)
    out = (weights @ v).transpose(1, 2).reshape(b, tokens.shape[1], -1)
    return attn.to_out[0](out)


@torch.no_grad()
def test_queries_from_person_only_equal_concat_then_keep_person_rows():
    attn = make_attention()
    batch, person_tokens, garment_tokens = 2, 12, 12
    person = torch.randn(2 * batch, person_tokens, 32)  # [uncond, cond]
    garment = torch.randn(batch, garment_tokens, 32)
    bank = GarmentFeatureBank()
    bank.slot("blk").tensor = garment
    bank.guidance = True
    attn.set_processor(TryonSelfAttentionProcessor(bank, bank.slot("blk")))
    ours = attn(person)

    # The reference: concatenate everything, attend with all queries, keep the person rows; the
    # unconditional half gets zeros for garment tokens.
    garment_rows = torch.cat([torch.zeros_like(garment), garment])
    everything = torch.cat([person, garment_rows], dim=1)
    reference = full_attention(attn, everything, everything)[:, :person_tokens]
    assert ours.shape == person.shape
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)

    # The unconditional half really uses zeros: feeding the garment there changes the result.
    leaked = torch.cat([person, torch.cat([garment, garment])], dim=1)
    leaked_out = full_attention(attn, leaked, leaked)[:batch, :person_tokens]
    assert not torch.allclose(ours[:batch], leaked_out, atol=1e-4)
    # and the conditional half does see the garment.
    alone = full_attention(attn, person, person)[batch:]
    assert not torch.allclose(ours[batch:], alone, atol=1e-4)


@torch.no_grad()
def test_without_guidance_every_row_sees_its_garment():
    attn = make_attention()
    person, garment = torch.randn(3, 8, 32), torch.randn(3, 8, 32)
    bank = GarmentFeatureBank()
    bank.slot("blk").tensor = garment
    bank.guidance = False
    attn.set_processor(TryonSelfAttentionProcessor(bank, bank.slot("blk")))
    everything = torch.cat([person, garment], dim=1)
    reference = full_attention(attn, everything, everything)[:, :8]
    torch.testing.assert_close(attn(person), reference, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_garment_capture_records_the_input_and_attends_normally():
    attn = make_attention()
    tokens = torch.randn(2, 10, 32)
    bank = GarmentFeatureBank()
    attn.set_processor(GarmentCaptureProcessor(bank.slot("blk")))
    out = attn(tokens)
    assert bank.features["blk"] is tokens
    torch.testing.assert_close(out, full_attention(attn, tokens, tokens), rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_ip_cross_attention_adds_a_separate_softmax_over_image_tokens():
    attn = make_attention(dim=32, cross_dim=16)
    processor = TryonCrossAttentionProcessor(hidden_size=32, cross_attention_dim=16, num_tokens=4)
    torch.nn.init.normal_(processor.to_k_ip[0].weight)
    torch.nn.init.normal_(processor.to_v_ip[0].weight)
    attn.set_processor(processor)
    hidden, text, image = torch.randn(2, 10, 32), torch.randn(2, 7, 16), torch.randn(2, 4, 16)
    out = attn(hidden, encoder_hidden_states=torch.cat([text, image], dim=1))

    def heads(x: torch.Tensor) -> torch.Tensor:
        return x.view(2, x.shape[1], 2, 16).transpose(1, 2)

    q = heads(attn.to_q(hidden))
    text_part = F.scaled_dot_product_attention(q, heads(attn.to_k(text)), heads(attn.to_v(text)))
    k_ip, v_ip = heads(processor.to_k_ip[0](image)), heads(processor.to_v_ip[0](image))
    ip_part = F.scaled_dot_product_attention(q, k_ip, v_ip)
    summed = (text_part + ip_part).transpose(1, 2).reshape(2, 10, 32)
    torch.testing.assert_close(out, attn.to_out[0](summed), rtol=1e-5, atol=1e-5)
