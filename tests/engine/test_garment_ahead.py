"""GarmentNet for several timesteps in one pass: the same features and images as one pass per
step, in fewer, larger passes."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from tests.engine.test_pipeline import OPTIONS, sample
from vton.engine.checkpoint import load_model
from vton.engine.garment_ahead import GarmentFeaturesAhead, steps_per_pass
from vton.engine.optimize import EngineOptimizations
from vton.engine.pipeline import TryOnPipeline
from vton.engine.schedulers import SCHEDULERS
from vton.engine.step import run_garment_net

FIVE_STEPS = replace(OPTIONS, steps=5)


def garment_net_batches(pipeline: TryOnPipeline, run) -> list[int]:
    """The batch size of every GarmentNet call `run` makes."""
    batches: list[int] = []
    hook = pipeline.model.garment_net.register_forward_pre_hook(
        lambda _module, args: batches.append(args[0].shape[0])
    )
    try:
        run()
    finally:
        hook.remove()
    return batches


@pytest.mark.parametrize(
    ("garments", "rows", "expected"), [(1, 8, 8), (3, 8, 2), (5, 8, 1), (9, 8, 1), (2, 1, 1)]
)
def test_steps_per_pass_fills_about_the_rows_asked_for(garments, rows, expected):
    assert steps_per_pass(garments, rows) == expected


def test_each_steps_features_are_garment_nets_at_that_timestep(tiny_model_dir):
    pipeline = TryOnPipeline(load_model(tiny_model_dir))
    batch = [sample(0, 0), sample(1, 1)]
    cond = pipeline.conditioning.assemble(batch, OPTIONS, guidance=True, dedupe_garments=True)
    timesteps = torch.tensor([900, 700, 500, 300, 100])
    ahead = GarmentFeaturesAhead(pipeline.model, cond, timesteps, steps=2)
    for step in (0, 1, 2, 3, 4, 0):
        got = ahead(step)
        expected = run_garment_net(pipeline.model, timesteps[step], cond)
        assert list(got) == list(expected)
        for name, tensor in expected.items():
            assert got[name].shape == tensor.shape
            assert torch.allclose(got[name], tensor, atol=1e-5, rtol=0), (step, name)
    with pytest.raises(IndexError):
        ahead(5)


def test_ahead_gives_the_same_images_in_fewer_larger_garment_passes(tiny_model_dir):
    model = load_model(tiny_model_dir)
    every_step = TryOnPipeline(model, EngineOptimizations(garment_net_ahead=False))
    ahead = TryOnPipeline(model, EngineOptimizations(garment_net_ahead=True, garment_ahead_rows=4))
    status = {s.name: s for s in ahead.optimization_status}["garment_net_ahead"]
    assert status.enabled and "~4 rows" in status.reason
    # Two samples sharing one garment: G = 1, so 4 timesteps per pass: passes of 4 and 1 rows.
    shared = [sample(0, 0, seed=1, garment_key="g"), sample(1, 0, seed=2, garment_key="g")]
    # Two garments: 2 timesteps per pass (2 x 2 rows), the last pass 1 x 2.
    own = [sample(0, 0, seed=1), sample(1, 2, seed=2)]
    for batch, passes in ((shared, [4, 1]), (own, [4, 4, 2])):
        expected = every_step(batch, FIVE_STEPS)
        got: list = []

        def run(batch=batch, got=got) -> None:
            got.extend(ahead(batch, FIVE_STEPS))

        assert garment_net_batches(ahead, run) == passes
        for a, b in zip(expected, got, strict=True):
            assert torch.allclose(a.image, b.image, atol=1e-5, rtol=0)


@pytest.mark.parametrize("scheduler", sorted(SCHEDULERS))
def test_every_scheduler_gives_the_same_images_with_garment_net_ahead(tiny_model_dir, scheduler):
    model = load_model(tiny_model_dir)
    options = replace(FIVE_STEPS, scheduler=scheduler)
    batch = [sample(0, 0, seed=1)]
    off = TryOnPipeline(model, EngineOptimizations(garment_net_ahead=False))(batch, options)
    on = TryOnPipeline(model, EngineOptimizations(garment_ahead_rows=2))(batch, options)
    for a, b in zip(off, on, strict=True):
        assert torch.allclose(a.image, b.image, atol=1e-5, rtol=0)


def test_ahead_leaves_full_batches_to_the_fused_step(tiny_model_dir):
    ahead = TryOnPipeline(
        load_model(tiny_model_dir),
        EngineOptimizations(garment_net_ahead=True, garment_ahead_rows=2),
    )
    batch = [sample(0, 0), sample(1, 1)]  # two garments fill a pass of two rows alone
    assert garment_net_batches(ahead, lambda: ahead(batch, OPTIONS)) == [2] * OPTIONS.steps


def test_ahead_is_on_by_default_and_off_in_the_reference():
    assert EngineOptimizations().garment_net_ahead
    assert not EngineOptimizations.reference().garment_net_ahead
