"""The step dispatcher: one captured step per StepKey, captured only until the warm-up ends; and the
warm-up captures every step a request can reach, so after it no request captures or runs eagerly.

CUDA graphs need a GPU: here the capture is a recorder that runs the step eagerly and checks that
every replay of a key has the shapes of its capture (a key that missed a shape would fail)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from tests.engine.test_pipeline import OPTIONS, sample
from vton.engine import step as step_module
from vton.engine.checkpoint import load_model
from vton.engine.optimize import EngineOptimizations
from vton.engine.pipeline import TryOnPipeline
from vton.engine.step import StepGraphs, StepKey, run_networks


def shapes(latent_in, timestep, cond, features) -> tuple:
    tensors = [latent_in, timestep, *vars(cond).values(), *(features or {}).values()]
    return tuple(tuple(t.shape) for t in tensors if isinstance(t, torch.Tensor))


class RecordingCapture:
    """Stands in for CUDA graph capture: each captured step runs eagerly, on its capture's
    shapes only."""

    def __init__(self) -> None:
        self.captures = 0

    def __call__(self, model, latent_in, timestep, cond, guidance, features):
        self.captures += 1
        captured = shapes(latent_in, timestep, cond, features)

        def replay(latent_in, timestep, cond, features):
            assert shapes(latent_in, timestep, cond, features) == captured
            return run_networks(model, latent_in, timestep, cond, guidance, features)

        return replay


KEY = StepKey(samples=1, guidance=True, garment_net_in_step=False, latent_size=(16, 12))


def test_unknown_keys_are_captured_until_frozen_then_run_eagerly_and_counted(monkeypatch):
    eager: list[tuple] = []
    monkeypatch.setattr(step_module, "run_networks", lambda *args: eager.append(args) or "eager")
    captured: list[int] = []

    def capture(*_args):
        captured.append(1)
        return lambda *_: "replayed"

    graphs = StepGraphs(model=None, capture=capture)  # type: ignore[arg-type]
    x = torch.zeros(2, 3)
    assert graphs(KEY, x, torch.tensor(1), None, True) == "replayed"  # type: ignore[arg-type]
    assert graphs(KEY, x, torch.tensor(1), None, True) == "replayed"  # type: ignore[arg-type]
    assert len(captured) == 1 and graphs.keys() == {KEY}
    graphs.freeze()
    other = replace(KEY, guidance=False)
    assert graphs(other, x, torch.tensor(1), None, False) == "eager"  # type: ignore[arg-type]
    assert graphs(other, x, torch.tensor(1), None, False) == "eager"  # type: ignore[arg-type]
    assert graphs(KEY, x, torch.tensor(1), None, True) == "replayed"  # type: ignore[arg-type]
    assert len(captured) == 1 and graphs.keys() == {KEY}
    assert graphs.eager_steps == 2 and len(eager) == 2


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return load_model(tiny_model_dir)


def keyed(person: int, garment: int, seed: int = 1):
    return sample(person, garment, seed=seed, garment_key=f"garment-{garment}:v1")


def request_kinds(batch: int) -> list[list]:
    """Every garment layout a request can bring at this batch size: unkeyed (inline requests),
    keyed (a cache miss, then the same again: a hit), keyed beside unkeyed, and one keyed garment
    shared by every sample."""
    unkeyed = [sample(p, p, seed=p) for p in range(batch)]
    keyed_garments = [keyed(p, p, seed=p) for p in range(batch)]
    kinds = [unkeyed, keyed_garments, keyed_garments]
    if batch > 1:
        kinds.append([keyed(0, 0), *unkeyed[1:]])
        kinds.append([keyed(p, 0, seed=p) for p in range(batch)])
    return kinds


@pytest.mark.parametrize(
    "optimizations",
    [
        # rows 2: batch 1 runs GarmentNet ahead, batch 2 inside the step
        EngineOptimizations(garment_ahead_rows=2),
        EngineOptimizations(garment_net_ahead=False),
        EngineOptimizations(garment_ahead_rows=2, garment_feature_cache_bytes=1 << 30),
        EngineOptimizations(garment_net_ahead=False, garment_feature_cache_bytes=1 << 30),
        EngineOptimizations(garment_features_once=True),
    ],
    ids=["ahead", "every-step", "cache", "cache-every-step", "once"],
)
def test_after_the_warm_up_every_request_replays_a_warmed_step(model, optimizations):
    max_batch = 2
    pipeline = TryOnPipeline(model, optimizations)
    capture = RecordingCapture()
    pipeline.graphs = StepGraphs(model, capture=capture)
    pipeline.warm_up(range(1, max_batch + 1), OPTIONS)
    warmed = pipeline.graphs.keys()
    assert capture.captures == len(warmed)
    assert {(k.samples, k.guidance) for k in warmed} == {
        (b, g) for b in range(1, max_batch + 1) for g in (True, False)
    }

    one_step = replace(OPTIONS, steps=1)  # the step key does not depend on the step count
    for batch in range(1, max_batch + 1):
        for guidance_scale in (2.0, 1.0):
            for samples in request_kinds(batch):
                pipeline.final_latents(samples, replace(one_step, guidance_scale=guidance_scale))
    assert pipeline.graphs.eager_steps == 0
    assert capture.captures == len(warmed) and pipeline.graphs.keys() == warmed
    cache = pipeline.garment_features.cache
    if cache is not None:
        assert cache.hits > 0 and cache.misses > 0  # both paths were taken


def test_a_step_the_warm_up_missed_runs_eagerly_with_the_same_image(model):
    pipeline = TryOnPipeline(model)
    capture = RecordingCapture()
    pipeline.graphs = StepGraphs(model, capture=capture)
    pipeline.warm_up([1], OPTIONS)
    expected = TryOnPipeline(model)([sample(0, 0), sample(1, 1)], OPTIONS)
    got = pipeline([sample(0, 0), sample(1, 1)], OPTIONS)  # batch 2 was not warmed
    assert pipeline.graphs.eager_steps == OPTIONS.steps
    assert capture.captures == len(pipeline.graphs.keys()) == 2  # batch 1, guidance on and off
    for a, b in zip(expected, got, strict=True):
        assert torch.equal(a.image, b.image)
