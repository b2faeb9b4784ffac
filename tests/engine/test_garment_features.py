"""Where the steps' garment features come from: ahead of the steps in fewer, larger GarmentNet
passes, or from the per-garment cache, with the same images; and the plan's step key says which
step a batch leads to."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from tests.engine.test_pipeline import OPTIONS, sample
from vton.engine.checkpoint import load_model
from vton.engine.garment_features import AheadPasses, GarmentFeatureCache, steps_per_pass
from vton.engine.noise_schedulers import SCHEDULERS
from vton.engine.optimize import EngineOptimizations
from vton.engine.pipeline import TryOnPipeline
from vton.engine.step import run_garment_net

FIVE_STEPS = replace(OPTIONS, steps=5)
FOUR_STEPS = replace(OPTIONS, steps=4)
CACHED = EngineOptimizations(garment_feature_cache_bytes=1 << 30)


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return load_model(tiny_model_dir)


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


def test_each_steps_features_are_garment_nets_at_that_timestep(model):
    pipeline = TryOnPipeline(model)
    batch = [sample(0, 0), sample(1, 1)]
    cond = pipeline.conditioning.assemble(batch, OPTIONS, guidance=True)
    timesteps = torch.tensor([900, 700, 500, 300, 100])
    ahead = AheadPasses(pipeline.model, cond, timesteps, steps=2)
    for step in (0, 1, 2, 3, 4, 0):
        got = ahead(step)
        expected = run_garment_net(pipeline.model, timesteps[step], cond)
        assert list(got) == list(expected)
        for name, tensor in expected.items():
            assert got[name].shape == tensor.shape
            assert torch.allclose(got[name], tensor, atol=1e-5, rtol=0), (step, name)
    with pytest.raises(IndexError):
        ahead(5)


def test_ahead_gives_the_same_images_in_fewer_larger_garment_passes(model):
    every_step = TryOnPipeline(model, EngineOptimizations(garment_net_ahead=False))
    ahead = TryOnPipeline(model, EngineOptimizations(garment_net_ahead=True, garment_ahead_rows=4))
    status = {s.name: s for s in ahead.optimization_status}["garment_net_ahead"]
    assert status.enabled and "~4 rows" in status.reason
    # One garment: 4 timesteps per pass, passes of 4 and 1 rows.
    one = [sample(0, 0, seed=1)]
    # Two garments: 2 timesteps per pass (2 x 2 rows), the last pass 1 x 2.
    two = [sample(0, 0, seed=1), sample(1, 2, seed=2)]
    for batch, passes in ((one, [4, 1]), (two, [4, 4, 2])):
        expected = every_step(batch, FIVE_STEPS)
        got: list = []

        def run(batch=batch, got=got) -> None:
            got.extend(ahead(batch, FIVE_STEPS))

        assert garment_net_batches(ahead, run) == passes
        for a, b in zip(expected, got, strict=True):
            assert torch.allclose(a.image, b.image, atol=1e-5, rtol=0)


@pytest.mark.parametrize("scheduler", sorted(SCHEDULERS))
def test_every_scheduler_gives_the_same_images_with_garment_net_ahead(model, scheduler):
    options = replace(FIVE_STEPS, scheduler=scheduler)
    batch = [sample(0, 0, seed=1)]
    off = TryOnPipeline(model, EngineOptimizations(garment_net_ahead=False))(batch, options)
    on = TryOnPipeline(model, EngineOptimizations(garment_ahead_rows=2))(batch, options)
    for a, b in zip(off, on, strict=True):
        assert torch.allclose(a.image, b.image, atol=1e-5, rtol=0)


def test_ahead_leaves_full_batches_to_the_fused_step(model):
    ahead = TryOnPipeline(model, EngineOptimizations(garment_net_ahead=True, garment_ahead_rows=2))
    batch = [sample(0, 0), sample(1, 1)]  # two garments fill a pass of two rows alone
    assert garment_net_batches(ahead, lambda: ahead(batch, OPTIONS)) == [2] * OPTIONS.steps


def test_ahead_is_on_by_default_and_off_in_the_reference():
    assert EngineOptimizations().garment_net_ahead
    assert not EngineOptimizations.reference().garment_net_ahead


# -- the garment feature cache ---------------------------------------------------------------


def keyed(person: int, garment: int, seed: int = 1):
    return sample(person, garment, seed=seed, garment_key=f"garment-{garment}:v1")


def assert_same_images(expected, got) -> None:
    for a, b in zip(expected, got, strict=True):
        assert torch.allclose(a.image, b.image, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "batch",
    [
        [keyed(0, 0)],
        [keyed(0, 0, seed=1), keyed(1, 2, seed=2)],  # two garments, one GarmentNet row each
        [keyed(0, 0, seed=1), keyed(1, 0, seed=2)],  # two people, one shared garment
    ],
)
def test_a_repeat_garment_skips_garment_net_with_the_same_images(model, batch):
    plain = TryOnPipeline(model)
    cached = TryOnPipeline(model, CACHED)
    expected = plain(batch, FOUR_STEPS)
    first: list = []
    assert garment_net_batches(cached, lambda: first.extend(cached(batch, FOUR_STEPS)))
    assert len(cached.garment_features.cache) == len({s.garment_key for s in batch})
    assert (cached.garment_features.cache.hits, cached.garment_features.cache.misses) == (0, 1)
    again: list = []
    assert garment_net_batches(cached, lambda: again.extend(cached(batch, FOUR_STEPS))) == []
    assert (cached.garment_features.cache.hits, cached.garment_features.cache.misses) == (1, 1)
    assert cached.garment_features.cache.stats()["bytes"] > 0
    assert_same_images(expected, first)
    assert_same_images(expected, again)


def test_the_cache_serves_a_garment_to_another_person(model):
    cached = TryOnPipeline(model, CACHED)
    cached([keyed(0, 0)], FOUR_STEPS)
    other = [keyed(1, 0, seed=7)]
    got: list = []
    assert garment_net_batches(cached, lambda: got.extend(cached(other, FOUR_STEPS))) == []
    assert_same_images(TryOnPipeline(model)(other, FOUR_STEPS), got)


def test_unkeyed_garments_and_other_schedules_are_not_served_from_the_cache(model):
    cached = TryOnPipeline(model, CACHED)
    unkeyed = [sample(0, 0)]
    cached(unkeyed, FOUR_STEPS)
    assert len(cached.garment_features.cache) == 0
    assert garment_net_batches(cached, lambda: cached(unkeyed, FOUR_STEPS))
    cached([keyed(0, 0)], FOUR_STEPS)
    assert garment_net_batches(cached, lambda: cached([keyed(0, 0)], OPTIONS))  # 3 steps, not 4
    assert len(cached.garment_features.cache) == 2  # one timeline per schedule


def test_garments_over_the_budget_are_not_stored(model):
    tiny_budget = TryOnPipeline(model, EngineOptimizations(garment_feature_cache_bytes=1024))
    expected = TryOnPipeline(model)([keyed(0, 0)], FOUR_STEPS)
    assert_same_images(expected, tiny_budget([keyed(0, 0)], FOUR_STEPS))
    assert len(tiny_budget.garment_features.cache) == 0


def test_warm_up_leaves_the_cache_empty_and_it_is_off_by_default(model):
    assert EngineOptimizations().garment_feature_cache_bytes == 0
    assert TryOnPipeline(model).garment_features.cache is None
    cached = TryOnPipeline(model, CACHED)
    cached.warm_up([1, 2], OPTIONS)
    assert len(cached.garment_features.cache) == 0
    assert cached.garment_features.cache.stats() | {"max_bytes": 0} == {
        "hits_total": 0,  # the warm-up's lookups are not counted
        "misses_total": 0,
        "evictions_total": 0,
        "entries": 0,
        "bytes": 0,
        "max_bytes": 0,
    }
    status = {s.name: s for s in cached.optimization_status}["garment_feature_cache"]
    assert status.enabled and "1.0 GiB" in status.reason


def test_a_request_that_fails_midway_stores_nothing():
    cache = GarmentFeatureCache(1 << 20)
    features = {"block": torch.ones(1, 3, 2)}

    def source(step: int):
        if step == 2:
            raise RuntimeError("out of memory")
        return features

    recording = cache.recording(source, ["g"], steps=3)
    recording(0), recording(1)
    with pytest.raises(RuntimeError):
        recording(2)
    assert len(cache) == 0 and cache.cached(["g"]) is None


def test_a_stored_timeline_holds_each_steps_features():
    cache = GarmentFeatureCache(1 << 20)
    steps = [{"block": torch.full((2, 3, 4), float(i))} for i in range(3)]
    recording = cache.recording(lambda i: steps[i], ["a", "b"], steps=3)
    for i in range(3):
        recording(i)
    assert len(cache) == 2 and cache.lru.bytes == 2 * 3 * 3 * 4 * 4  # float32 timelines
    served = cache.cached(["b", "a"])
    assert served is not None
    for i in range(3):
        assert torch.equal(served(i)["block"], steps[i]["block"])


def test_out_of_memory_drops_the_cache_and_runs_again_from_fresh_noise(model, monkeypatch):
    cached = TryOnPipeline(model, CACHED)
    batch = [keyed(0, 0)]
    expected = TryOnPipeline(model)(batch, FOUR_STEPS)
    cached(batch, FOUR_STEPS)
    real_denoise = cached.denoise
    failures: list[int] = []

    def denoise_then_fail_once(*args, **kwargs):
        latents = real_denoise(*args, **kwargs)  # draws every step's noise from the generators
        if not failures:
            failures.append(1)
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return latents

    monkeypatch.setattr(cached, "denoise", denoise_then_fail_once)
    got = cached(batch, FOUR_STEPS)
    assert failures == [1]
    assert len(cached.garment_features.cache) == 1  # dropped, then filled again by the second run
    assert_same_images(expected, got)  # fresh generators: the same noise as the first time


def test_out_of_memory_without_a_cache_is_the_callers_to_handle(model, monkeypatch):
    plain = TryOnPipeline(model)

    def fail(*_args, **_kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(plain, "denoise", fail)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        plain([keyed(0, 0)], FOUR_STEPS)


def test_recording_makes_room_in_the_budget_before_it_starts():
    timeline_bytes = 3 * 2 * 4  # 3 steps of (2,) float32
    cache = GarmentFeatureCache(2 * timeline_bytes)

    def start(key: str):
        recording = cache.recording(lambda _: {"block": torch.ones(1, 2)}, [key], steps=3)
        recording(0)  # allocates the timeline being recorded
        return recording

    for key in ("a", "b"):
        recording = start(key)
        recording(1), recording(2)
    pending = start("c")
    assert cache.cached(["a"]) is None and len(cache) == 1  # evicted before recording "c"
    pending(1), pending(2)
    assert cache.cached(["b"]) is not None and cache.cached(["c"]) is not None
    assert cache.lru.bytes == 2 * timeline_bytes


# -- the plan ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("optimizations", "in_step_seen"),
    [
        (EngineOptimizations(garment_ahead_rows=2), {False, True}),  # batch 2 fills a pass
        (EngineOptimizations(garment_net_ahead=False), {True}),
        (replace(CACHED, garment_ahead_rows=2), {False, True}),
        (EngineOptimizations(garment_features_once=True), {False}),
    ],
)
def test_the_step_key_says_whether_garment_net_runs_inside_the_step(
    model, optimizations, in_step_seen
):
    planner = TryOnPipeline(model, optimizations).garment_features
    encoder = TryOnPipeline(model).conditioning
    timesteps = torch.tensor([900, 500])
    batches = [
        [sample(0, 0)],
        [sample(0, 0), sample(1, 1)],
        [keyed(0, 0), keyed(1, 1)],
        [keyed(0, 0), sample(1, 1)],  # one unkeyed garment: the cache does not apply
    ]
    in_step = set()
    for batch in batches:
        for guidance in (True, False):
            cond = encoder.assemble(batch, OPTIONS, guidance)
            source, key = planner.plan(cond, guidance, timesteps, ("ddpm", 2))
            assert (key.samples, key.guidance, key.latent_size) == (len(batch), guidance, (16, 12))
            assert key.garment_net_in_step == (source(0) is None)
            in_step.add(key.garment_net_in_step)
    assert in_step == in_step_seen
