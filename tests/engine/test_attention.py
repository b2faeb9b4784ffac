"""The TryonNet self-attention rule and the IP cross-attention, on random tensors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention

from vton.engine import attention
from vton.engine.attention import (
    GarmentCaptureProcessor,
    GarmentFeatureBank,
    TryonCrossAttentionProcessor,
    TryonSelfAttentionProcessor,
    attend,
    attend_beside_zero_keys,
    zero_key_folding_problem,
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


@torch.no_grad()
@pytest.mark.parametrize("zero_keys", [1, 7, 40])
def test_attention_beside_zero_keys_equals_attention_over_explicit_zeros(zero_keys):
    torch.manual_seed(1)
    query, key, value = torch.randn(2, 9, 32), torch.randn(2, 11, 32), torch.randn(2, 11, 32)
    zeros = torch.zeros(2, zero_keys, 32)
    explicit = attend(query, torch.cat([key, zeros], 1), torch.cat([value, zeros], 1), heads=4)
    folded = attend_beside_zero_keys(query, key, value, heads=4, zero_keys=zero_keys)
    torch.testing.assert_close(folded, explicit, rtol=1e-5, atol=1e-6)
    # The zero keys do count: attention over the real keys alone is a different result.
    assert not torch.allclose(folded, attend(query, key, value, heads=4), atol=1e-3)


@torch.no_grad()
@pytest.mark.parametrize("index", [None, torch.tensor([1, 0, 1])])
def test_folded_zero_garment_keys_give_the_unfolded_result(index):
    attn = make_attention()
    person = torch.randn(6, 12, 32)  # [uncond 3, cond 3]
    garment = torch.randn(3 if index is None else 2, 12, 32)
    bank = GarmentFeatureBank()
    bank.slot("blk").tensor = garment
    bank.index = index
    processor = TryonSelfAttentionProcessor(bank, bank.slot("blk"))
    attn.set_processor(processor)
    unfolded = attn(person)
    processor.fold_zero_garment_keys = True
    torch.testing.assert_close(attn(person), unfolded, rtol=1e-5, atol=1e-5)


def test_zero_key_folding_runs_on_the_cpu():
    assert zero_key_folding_problem(torch.device("cpu"), torch.float32) is None


@torch.no_grad()
def test_zero_garment_keys_are_folded_only_for_batches_that_gain(monkeypatch):
    calls: list[int] = []

    def counted(q, k, v):
        calls.append(q.shape[0])
        return original(q, k, v)

    original = attention.attention_with_log_sum_exp
    monkeypatch.setattr(attention, "attention_with_log_sum_exp", counted)
    attn = make_attention()
    bank = GarmentFeatureBank()
    attn.set_processor(TryonSelfAttentionProcessor(bank, bank.slot("blk"), True, True))
    for samples in (1, attention.FOLD_MIN_SAMPLES):
        bank.slot("blk").tensor = torch.randn(samples, 12, 32)
        attn(torch.randn(2 * samples, 12, 32))
    assert calls == [attention.FOLD_MIN_SAMPLES]  # the single sample attended unfolded
