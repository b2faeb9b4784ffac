"""Cross-attention keys and values projected for all blocks at once: the same images, no
per-layer projection left, and no weight stored twice."""

from __future__ import annotations

import torch
from diffusers.models.attention_processor import Attention

from tests.engine.test_pipeline import OPTIONS, sample
from vton.engine.attention import GarmentCrossAttentionProcessor, TryonCrossAttentionProcessor
from vton.engine.checkpoint import load_model
from vton.engine.optimize import EngineOptimizations
from vton.engine.pipeline import TryOnPipeline

BATCHED = EngineOptimizations(batch_cross_projections=True)
PER_LAYER = EngineOptimizations(batch_cross_projections=False)


def cross_attentions(pipeline: TryOnPipeline) -> list[Attention]:
    model = pipeline.model
    return [
        m
        for net in (model.tryon_net, model.garment_net)
        for m in net.modules()
        if isinstance(m, Attention) and m.is_cross_attention
    ]


def test_batched_projections_give_the_per_layer_images(tiny_model_dir):
    per_layer = TryOnPipeline(load_model(tiny_model_dir), PER_LAYER)
    batched = TryOnPipeline(load_model(tiny_model_dir), BATCHED)
    batch = [sample(0, 0, seed=1), sample(1, 2, seed=2)]
    for a, b in zip(per_layer(batch, OPTIONS), batched(batch, OPTIONS), strict=True):
        assert torch.allclose(a.image, b.image, atol=1e-5, rtol=0)


def test_no_cross_attention_projects_per_layer_and_the_slots_are_emptied(tiny_model_dir):
    pipeline = TryOnPipeline(load_model(tiny_model_dir), BATCHED)
    attentions = cross_attentions(pipeline)
    status = {s.name: s for s in pipeline.optimization_status}["batch_cross_projections"]
    assert status.enabled and status.reason.startswith(f"{len(attentions)} cross-attentions")
    calls: list[str] = []
    for attn in attentions:
        for layer in (attn.to_k, attn.to_v):
            layer.register_forward_hook(lambda *_: calls.append("per-layer"))
        processor = attn.processor
        assert isinstance(processor, TryonCrossAttentionProcessor | GarmentCrossAttentionProcessor)
    pipeline([sample(0, 0)], OPTIONS)
    assert calls == []
    for attn in attentions:
        projected = attn.processor.projected
        assert projected.key is None and projected.value is None


def test_the_layers_weights_are_views_of_the_stacks(tiny_model_dir):
    model = load_model(tiny_model_dir)
    before = sum(p.numel() for p in model.tryon_net.parameters())
    pipeline = TryOnPipeline(model, BATCHED)
    assert sum(p.numel() for p in model.tryon_net.parameters()) == before
    storages = {
        layer.weight.untyped_storage().data_ptr()
        for attn in cross_attentions(pipeline)
        for layer in (attn.to_k, attn.to_v)
    }
    # one storage per stack (text key, text value per width), not one per layer
    assert len(storages) < len(cross_attentions(pipeline))


def test_the_blocks_receive_projections_without_a_view_base(tiny_model_dir):
    """Dynamo gives a view input its base's sizes as extra symbols (measured: a slower trace on
    every start), so the processors' slots hold detached tensors."""
    pipeline = TryOnPipeline(load_model(tiny_model_dir), BATCHED)
    seen: list[torch.Tensor] = []
    attn = cross_attentions(pipeline)[0]
    attn.register_forward_pre_hook(lambda module, _: seen.append(module.processor.projected.key))
    pipeline([sample(0, 0)], OPTIONS)
    assert seen and all(t is not None and t._base is None for t in seen)
