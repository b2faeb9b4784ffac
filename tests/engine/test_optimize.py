"""Output-preserving optimisations leave the result as it was; opt-in modes say they change it."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from tests.engine.test_pipeline import OPTIONS, sample
from vton.engine.checkpoint import load_model
from vton.engine.optimize import (
    EngineOptimizations,
    apply_optimizations,
    compile_regions,
    garment_feature_order,
    truncate_garment_net,
)
from vton.engine.pipeline import TryOnPipeline


@torch.no_grad()
def capture(model, latents, context) -> dict[str, torch.Tensor]:
    model.bank.clear()
    model.garment_net(latents, 500, encoder_hidden_states=context)
    return dict(model.bank.features)


def test_truncated_garment_net_yields_the_same_features_in_the_same_order(tiny_model_dir):
    model = load_model(tiny_model_dir)
    order = garment_feature_order(model.garment_net)
    latents, context = torch.randn(2, 4, 16, 12), torch.randn(2, 77, 64)
    full = capture(model, latents, context)
    assert list(full) == order  # forward order: down, mid, up
    before = sum(p.numel() for p in model.garment_net.parameters())
    reason = truncate_garment_net(model.garment_net)
    assert "dropped 1 up block" in reason
    assert sum(p.numel() for p in model.garment_net.parameters()) < before
    truncated = capture(model, latents, context)
    assert list(truncated) == order
    for name in order:
        assert torch.equal(full[name], truncated[name]), name


def test_reference_mode_and_optimised_mode_give_the_same_images(tiny_model_dir):
    reference = TryOnPipeline(load_model(tiny_model_dir), EngineOptimizations.reference())
    optimised = TryOnPipeline(load_model(tiny_model_dir))
    batch = [sample(0, 0, seed=1), sample(1, 2, seed=2)]
    expected = reference(batch, OPTIONS)
    got = optimised(batch, OPTIONS)
    for a, b in zip(expected, got, strict=True):
        assert torch.allclose(a.image, b.image, atol=1e-5, rtol=0)


def test_shared_garments_run_once_and_keep_each_result(tiny_model_dir):
    pipeline = TryOnPipeline(load_model(tiny_model_dir))
    shapes: list[tuple[int, ...]] = []
    hook = pipeline.model.garment_net.register_forward_pre_hook(
        lambda _module, args: shapes.append(tuple(args[0].shape))
    )
    shared = [sample(p, 0, seed=p, garment_key="g0:v1") for p in range(3)]
    together = pipeline(shared, OPTIONS)
    hook.remove()
    # one garment row per step, however the steps' rows are grouped into GarmentNet passes
    assert shapes and sum(shape[0] for shape in shapes) == OPTIONS.steps
    for p in range(3):
        alone = pipeline([sample(p, 0, seed=p)], OPTIONS)[0]
        assert torch.allclose(together[p].image, alone.image, atol=1e-5, rtol=0)


def test_keyed_conditioning_is_cached_and_reused(tiny_model_dir):
    pipeline = TryOnPipeline(load_model(tiny_model_dir))
    keyed = sample(0, 0, seed=3, person_key="u1/upper:v1", garment_key="g0:v1")
    first = pipeline([keyed], OPTIONS)[0]
    assert len(pipeline.conditioning.cache) == 2
    # IP tokens too: the garment's are cached with it, the unconditional ones are a constant.
    calls: list[str] = []
    hooks = [
        module.register_forward_hook(lambda *_, name=name: calls.append(name))
        for name, module in (
            ("vae", pipeline.model.vae.encoder),
            ("resampler", pipeline.model.resampler),
        )
    ]
    second = pipeline([keyed], OPTIONS)[0]
    for hook in hooks:
        hook.remove()
    assert calls == []  # no encoding: both conditionings came from the cache
    assert torch.equal(first.image, second.image)


def test_every_optimisation_reports_its_status(tiny_model_dir):
    status = apply_optimizations(load_model(tiny_model_dir), EngineOptimizations())
    names = {s.name for s in status}
    assert {"person_queries_only", "truncate_garment_net", "tf32", "compile"} <= names
    tf32 = next(s for s in status if s.name == "tf32")
    assert not tf32.enabled and "CUDA" in tf32.reason  # this machine has no GPU


@pytest.mark.parametrize("batched_cross", [False, True])
def test_compiled_transformer_blocks_share_one_graph_per_block_shape(tiny_model_dir, batched_cross):
    from diffusers.models.attention import BasicTransformerBlock
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    model = load_model(tiny_model_dir)
    pipeline = TryOnPipeline(model, EngineOptimizations(batch_cross_projections=batched_cross))
    expected = pipeline([sample(0, 0)], OPTIONS)[0].image
    # Dynamo's graphs run without Inductor: the same arithmetic, so the same numbers.
    blocks = compile_regions(model, block_types=(BasicTransformerBlock,), backend="eager")
    try:
        assert pipeline([sample(0, 0)], OPTIONS)[0].image.equal(expected)
        graphs_batch_1 = counters["stats"]["unique_graphs"]
        # One graph per block shape, not per block: no graph is specialised on a block's name
        # (two sizes x TryonNet / GarmentNet / GarmentNet's capture-only last block).
        assert 0 < graphs_batch_1 <= 6 < blocks
        pipeline([sample(0, 0), sample(1, 1)], OPTIONS)
        graphs_dynamic = counters["stats"]["unique_graphs"]
        pipeline([sample(0, 0), sample(1, 1), sample(2, 2)], OPTIONS)
        # The second batch size makes the batch dimension symbolic: the third compiles nothing.
        assert counters["stats"]["unique_graphs"] == graphs_dynamic
        assert not counters["graph_break"]
    finally:
        torch._dynamo.reset()


def count_garment_net_calls(pipeline: TryOnPipeline, run) -> int:
    calls: list[int] = []
    hook = pipeline.model.garment_net.register_forward_hook(lambda *_: calls.append(1))
    try:
        run()
    finally:
        hook.remove()
    return len(calls)


def test_garment_features_once_is_an_opt_in_that_runs_garment_net_once(tiny_model_dir):
    model = load_model(tiny_model_dir)
    every_step = TryOnPipeline(model, EngineOptimizations(garment_net_ahead=False))
    once = TryOnPipeline(model, EngineOptimizations(garment_features_once=True))
    assert not EngineOptimizations().garment_features_once  # never a default
    batch = [sample(0, 0, seed=1), sample(1, 2, seed=2)]

    default = every_step(batch, OPTIONS)
    got: list = []
    assert count_garment_net_calls(once, lambda: got.extend(once(batch, OPTIONS))) == 1
    assert count_garment_net_calls(every_step, lambda: every_step(batch, OPTIONS)) == OPTIONS.steps
    for a, b in zip(default, got, strict=True):
        assert torch.isfinite(b.image).all()
        assert not torch.allclose(a.image, b.image, atol=1e-4)  # it does change the output

    # With one step the reused features are that step's own: the same images.
    one_step = replace(OPTIONS, steps=1)
    for a, b in zip(every_step(batch, one_step), once(batch, one_step), strict=True):
        assert torch.equal(a.image, b.image)
