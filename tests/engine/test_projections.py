"""Fused attention projections compute what the separate ones did, and store nothing twice."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import Attention, FusedAttnProcessor2_0
from torch import nn

from tests.engine.test_attention import full_attention, make_attention
from tests.engine.test_pipeline import OPTIONS, sample
from vton.engine.attention import (
    GarmentCaptureProcessor,
    GarmentFeatureBank,
    TryonCrossAttentionProcessor,
    TryonSelfAttentionProcessor,
)
from vton.engine.checkpoint import load_model
from vton.engine.optimize import EngineOptimizations
from vton.engine.pipeline import TryOnPipeline
from vton.engine.projections import fuse_attention_projections, fuse_linears


@torch.no_grad()
@pytest.mark.parametrize("bias", [False, True])
def test_fused_linear_computes_the_layers_side_by_side_and_stores_nothing_twice(bias):
    torch.manual_seed(0)
    layers = [nn.Linear(8, out, bias=bias) for out in (4, 6, 4)]
    x = torch.randn(3, 5, 8)
    expected = torch.cat([layer(x) for layer in layers], dim=-1)
    fused = fuse_linears(layers)
    torch.testing.assert_close(fused(x), expected)
    torch.testing.assert_close(torch.cat([layer(x) for layer in layers], dim=-1), expected)
    storage = fused.weight.untyped_storage().data_ptr()
    for layer in layers:
        assert layer.weight.untyped_storage().data_ptr() == storage
        assert (layer.bias is None) == (not bias)
    assert fused.weight.shape == (14, 8)


def test_fusion_refuses_layers_that_cannot_share_a_gemm():
    with pytest.raises(ValueError, match="input sizes"):
        fuse_linears([nn.Linear(8, 4), nn.Linear(6, 4)])
    with pytest.raises(ValueError, match="bias"):
        fuse_linears([nn.Linear(8, 4), nn.Linear(8, 4, bias=False)])


def calls(module: nn.Module) -> list[int]:
    counter = [0]
    module.register_forward_hook(lambda *_: counter.__setitem__(0, counter[0] + 1))
    return counter


def fuse_one(attn: Attention) -> int:
    wrapper = nn.Module()
    wrapper.attn = attn
    return fuse_attention_projections(wrapper)  # type: ignore[arg-type]


@torch.no_grad()
def test_fused_tryon_self_attention_projects_person_tokens_once_and_zeros_never():
    attn = make_attention()
    person, garment = torch.randn(4, 12, 32), torch.randn(2, 12, 32)
    bank = GarmentFeatureBank()
    bank.slot("blk").tensor = garment
    attn.set_processor(TryonSelfAttentionProcessor(bank, bank.slot("blk")))
    garment_rows = torch.cat([torch.zeros_like(garment), garment])
    everything = torch.cat([person, garment_rows], dim=1)
    reference = full_attention(attn, everything, everything)[:, :12]

    assert fuse_one(attn) == 1
    qkv, separate = calls(attn.to_qkv), calls(attn.to_k)
    torch.testing.assert_close(attn(person), reference, rtol=1e-5, atol=1e-5)
    assert qkv == [1] and separate == [0]


@torch.no_grad()
def test_fused_garment_capture_and_ip_cross_attention_keep_their_results():
    capture = make_attention()
    capture.set_processor(GarmentCaptureProcessor(GarmentFeatureBank().slot("blk")))
    tokens = torch.randn(2, 10, 32)
    expected_capture = capture(tokens)

    cross = make_attention(cross_dim=16)
    processor = TryonCrossAttentionProcessor(hidden_size=32, cross_attention_dim=16, num_tokens=4)
    cross.set_processor(processor)
    context = torch.randn(2, 7 + 4, 16)
    expected_cross = cross(tokens, encoder_hidden_states=context)

    assert fuse_one(capture) == 1 and fuse_one(cross) == 1
    text_kv, ip_kv = calls(cross.to_kv), calls(processor.to_kv_ip)
    torch.testing.assert_close(capture(tokens), expected_capture, rtol=1e-5, atol=1e-5)
    got = cross(tokens, encoder_hidden_states=context)
    torch.testing.assert_close(got, expected_cross, rtol=1e-5, atol=1e-5)
    assert text_kv == [1] and ip_kv == [1]


def test_fused_model_gives_the_unfused_images_and_every_attention_is_fused(tiny_model_dir):
    unfused = TryOnPipeline(load_model(tiny_model_dir), EngineOptimizations(fuse_projections=False))
    fused = TryOnPipeline(load_model(tiny_model_dir))
    attentions = [
        m
        for net in (fused.model.tryon_net, fused.model.garment_net)
        for m in net.modules()
        if isinstance(m, Attention)
    ]
    assert all(hasattr(m, "to_qkv") or hasattr(m, "to_kv") for m in attentions)
    garment_cross = [m for m in fused.model.garment_net.modules() if isinstance(m, Attention)]
    assert any(isinstance(m.processor, FusedAttnProcessor2_0) for m in garment_cross)
    batch = [sample(0, 0, seed=1), sample(1, 2, seed=2)]
    for a, b in zip(unfused(batch, OPTIONS), fused(batch, OPTIONS), strict=True):
        assert torch.allclose(a.image, b.image, atol=1e-5, rtol=0)
