"""The pipeline on the tiny model: batch equivalence, determinism, explicit latents, checks."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import random_image
from vton.engine.checkpoint import load_model
from vton.engine.noise_schedulers import SCHEDULERS
from vton.engine.optimize import EngineOptimizations
from vton.engine.pipeline import TryOnPipeline
from vton.engine.types import DiffusionOptions, TryOnSample
from vton.errors import InvalidInput

OPTIONS = DiffusionOptions(steps=3, height=128, width=96)


@pytest.fixture(scope="module")
def pipeline(tiny_model_dir) -> TryOnPipeline:
    return TryOnPipeline(load_model(tiny_model_dir))


def sample(person: int, garment: int, seed: int = 42, **kwargs) -> TryOnSample:
    return TryOnSample(
        person=random_image(100 + person),
        mask=random_image(200 + person, mode="L"),
        pose=random_image(300 + person),
        garment=random_image(400 + garment),
        description=f"garment number {garment}",
        seed=seed,
        **kwargs,
    )


@pytest.mark.parametrize("scheduler", sorted(SCHEDULERS))
def test_a_sample_in_a_mixed_batch_equals_the_sample_alone(pipeline, scheduler):
    options = DiffusionOptions(steps=3, scheduler=scheduler, height=128, width=96)
    alone = pipeline([sample(1, 1, seed=7)], options)[0].image
    batch = pipeline([sample(0, 2, seed=3), sample(1, 1, seed=7), sample(2, 0, seed=9)], options)
    assert torch.allclose(batch[1].image, alone, atol=1e-5, rtol=0)
    # the neighbours are different try-ons, not copies
    assert not torch.allclose(batch[0].image, alone, atol=1e-2)


def test_same_seed_is_bit_identical_and_different_seeds_differ(pipeline):
    first = pipeline([sample(0, 0, seed=5)], OPTIONS)[0]
    again = pipeline([sample(0, 0, seed=5)], OPTIONS)[0]
    other = pipeline([sample(0, 0, seed=6)], OPTIONS)[0]
    assert torch.equal(first.image, again.image)
    assert first.pil.tobytes() == again.pil.tobytes()
    assert not torch.equal(first.image, other.image)


def test_output_is_in_range_and_the_right_size(pipeline):
    out = pipeline([sample(0, 0)], OPTIONS)[0]
    assert out.image.shape == (3, 128, 96) and out.image.dtype == torch.float32
    assert out.image.min() >= -1 and out.image.max() <= 1
    assert out.pil.size == (96, 128) and out.pil.mode == "RGB"
    assert set(out.timings_ms) == {"encode", "diffusion", "decode"}


def test_explicit_latents_replace_the_seeded_noise(pipeline):
    # DDIM (eta 0) draws no noise after the first: the latents alone fix the result.
    ddim = DiffusionOptions(steps=3, scheduler="ddim", height=128, width=96)
    latents = torch.randn(1, 4, 16, 12, generator=torch.Generator().manual_seed(1234))
    a = pipeline([sample(0, 0, seed=1, latents=latents)], ddim)[0].image
    b = pipeline([sample(0, 0, seed=2, latents=latents[0])], ddim)[0].image
    seeded = pipeline([sample(0, 0, seed=1)], ddim)[0].image
    assert torch.equal(a, b)
    assert not torch.equal(a, seeded)


def test_text_embeddings_can_replace_the_description(pipeline):
    text = pipeline.conditioning.prompts.encode_garment("garment number 0")
    by_text = pipeline([sample(0, 0, text=text)], OPTIONS)[0].image
    by_description = pipeline([sample(0, 0)], OPTIONS)[0].image
    assert torch.equal(by_text, by_description)


def test_without_guidance_the_batch_is_not_doubled(pipeline):
    options = DiffusionOptions(steps=2, guidance_scale=1.0, height=128, width=96)
    alone = pipeline([sample(1, 1, seed=4)], options)[0].image
    batch = pipeline([sample(0, 0), sample(1, 1, seed=4)], options)
    assert torch.allclose(batch[1].image, alone, atol=1e-5, rtol=0)


def test_progress_is_reported_per_step(pipeline):
    seen: list[tuple[int, int]] = []
    pipeline([sample(0, 0)], OPTIONS, on_step=lambda k, n: seen.append((k, n)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


@pytest.mark.parametrize(
    ("options", "kwargs", "message"),
    [
        (DiffusionOptions(steps=0, height=128, width=96), {}, "steps"),
        (DiffusionOptions(steps=2, height=100, width=96), {}, "height"),
        (OPTIONS, {"latents": torch.zeros(1, 4, 8, 8)}, "latents"),
        (OPTIONS, {"description": None}, "description"),
    ],
)
def test_bad_input_is_refused_with_its_name(pipeline, options, kwargs, message):
    bad = sample(0, 0)
    for key, value in kwargs.items():
        setattr(bad, key, value)
    with pytest.raises(InvalidInput, match=message):
        pipeline([bad], options)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precisions_run_with_the_vae_kept_in_float32(tiny_model_dir, dtype):
    model = load_model(tiny_model_dir, dtype=dtype)
    assert model.tryon_net.dtype == dtype and model.vae_dtype == torch.float32
    out = TryOnPipeline(model)([sample(0, 0)], DiffusionOptions(steps=2, height=128, width=96))[0]
    assert out.image.dtype == torch.float32 and torch.isfinite(out.image).all()


def test_warm_up_runs_each_batch_size_and_decodes_once(pipeline, monkeypatch):
    decoded: list[int] = []
    decode = pipeline.decode
    monkeypatch.setattr(pipeline, "decode", lambda latents: decoded.append(1) or decode(latents))
    took = pipeline.warm_up([1, 3], OPTIONS)
    assert sorted(took) == [1, 3] and all(ms > 0 for ms in took.values())
    assert decoded == [1]  # one image per VAE call at any size: one decode warms it


def warm_up_runs(pipeline: TryOnPipeline, batch_sizes: list[int]) -> list[tuple[int, bool, bool]]:
    """(samples, guidance, one garment shared by all) of each warm-up try-on."""
    runs: list[tuple[int, bool, bool]] = []
    assemble = pipeline.conditioning.assemble

    def spy(samples, options, guidance):
        shared = len({s.garment_key for s in samples}) < len(samples)
        runs.append((len(samples), guidance, shared))
        return assemble(samples, options, guidance)

    pipeline.conditioning.assemble = spy
    try:
        pipeline.warm_up(batch_sizes, OPTIONS)
    finally:
        del pipeline.conditioning.assemble
    return runs


def test_warm_up_runs_guidance_on_and_off_and_a_shared_garment_where_the_step_differs(pipeline):
    """guidanceScale 1.0 (no guidance) halves TryonNet's rows, and a garment shared by every
    sample has its features given to the step: other step shapes, so they are captured (and
    compiled) at warm-up too, not on a user's request; layouts that lead to a step already
    warmed are not run again."""
    # GarmentNet ahead at batch 1 and 3 (passes of 8 rows): a shared garment, the same step
    assert warm_up_runs(pipeline, [1, 3]) == [
        (1, True, False),
        (1, False, False),
        (3, True, False),
        (3, False, False),
    ]
    every_step = TryOnPipeline(pipeline.model, EngineOptimizations(garment_net_ahead=False))
    assert warm_up_runs(every_step, [2]) == [
        (2, True, False),
        (2, True, True),
        (2, False, False),
        (2, False, True),
    ]


def test_the_vae_decodes_one_image_per_call(pipeline, monkeypatch):
    """The compiled decoder sees one shape only, and its activations are one image's."""
    batches: list[int] = []
    decode = pipeline.model.vae.decode

    def counted(latents, *args, **kwargs):
        batches.append(latents.shape[0])
        return decode(latents, *args, **kwargs)

    monkeypatch.setattr(pipeline.model.vae, "decode", counted)
    outputs = pipeline([sample(0, 0), sample(1, 1), sample(2, 2)], OPTIONS)
    assert batches == [1, 1, 1] and len(outputs) == 3
