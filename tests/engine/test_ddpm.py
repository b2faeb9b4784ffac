"""The sync-free DDPM step computes diffusers' DDPMScheduler.step bit for bit, from the same
generators, and the pipeline's images do not depend on it."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler, EulerDiscreteScheduler

from tests.engine.test_pipeline import sample
from vton.engine.checkpoint import load_model
from vton.engine.ddpm import SyncFreeDdpm
from vton.engine.optimize import EngineOptimizations
from vton.engine.pipeline import TryOnPipeline
from vton.engine.tiny import SCHEDULER_CONFIG
from vton.engine.types import DiffusionOptions


def generators(*seeds: int) -> list[torch.Generator]:
    return [torch.Generator("cpu").manual_seed(seed) for seed in seeds]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_sync_free_step_equals_diffusers_step_at_every_timestep(dtype):
    reference = DDPMScheduler.from_config(SCHEDULER_CONFIG)
    reference.set_timesteps(20)
    ours = DDPMScheduler.from_config(SCHEDULER_CONFIG)
    ours.set_timesteps(20, device="cpu")
    sync_free = SyncFreeDdpm(ours, generators(1, 2))
    reference_generators = generators(1, 2)
    outputs = torch.randn(20, 2, 4, 16, 12, generator=torch.Generator().manual_seed(0)).to(dtype)
    expected = got = torch.randn(2, 4, 16, 12, generator=torch.Generator().manual_seed(1)).to(dtype)
    for t, output in zip(reference.timesteps, outputs, strict=True):
        expected = reference.step(output, t, expected, generator=reference_generators).prev_sample
        got = sync_free.step(output, t, got)
        assert torch.equal(got, expected), int(t)
    assert int(reference.timesteps[-1]) < int(reference.timesteps[0])  # a whole schedule ran


def test_sync_free_step_covers_only_the_configurations_it_computes():
    assert SyncFreeDdpm.supports(DDPMScheduler.from_config(SCHEDULER_CONFIG))
    for change in (
        {"prediction_type": "v_prediction"},
        {"clip_sample": True},
        {"variance_type": "fixed_large"},
    ):
        assert not SyncFreeDdpm.supports(DDPMScheduler.from_config({**SCHEDULER_CONFIG, **change}))
    assert not SyncFreeDdpm.supports(EulerDiscreteScheduler.from_config(SCHEDULER_CONFIG))


@pytest.mark.parametrize("scheduler", ["ddpm", "euler"])
def test_try_on_images_are_the_same_with_and_without_sync_free_steps(tiny_model_dir, scheduler):
    options = DiffusionOptions(steps=4, scheduler=scheduler, height=128, width=96)
    batch = [sample(0, 1, seed=5), sample(1, 0, seed=6)]
    progress: list[tuple[int, int]] = []
    with_it = TryOnPipeline(load_model(tiny_model_dir))
    without = TryOnPipeline(load_model(tiny_model_dir), EngineOptimizations(sync_free_steps=False))
    got = with_it(batch, options, on_step=lambda done, total: progress.append((done, total)))
    expected = without(batch, options)
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a.image, b.image)
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
