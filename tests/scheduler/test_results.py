"""Results: PNG images with timings, the identical-request cache, event streams and metrics."""

from __future__ import annotations

import asyncio
import io
from dataclasses import replace

import pytest
from PIL import Image, ImageOps

from tests.fakes import FakePipeline, make_sample
from tests.scheduler.conftest import OPTIONS, WAIT_S, StartScheduler
from vton.engine.types import DiffusionOptions
from vton.scheduler import (
    InMemoryResultCache,
    ItemFinished,
    Job,
    JobEvent,
    JobFinished,
    JobState,
    Progress,
    ResultKey,
)

pytestmark = pytest.mark.timeout(30)


def _key(
    user_id: str = "alice",
    person_version: str = "p1",
    garment_version: str = "g1",
    model: str = "idm-vton@fp16",
    seed: int = 42,
    options: DiffusionOptions = OPTIONS,
    finish: str = "",
) -> str:
    return ResultKey(
        user_id, person_version, garment_version, model, seed, options, finish
    ).digest()


def test_a_result_is_a_png_with_timings(start: StartScheduler) -> None:
    job = start().submit("alice", [make_sample(seed=7)], OPTIONS)
    assert job.wait(WAIT_S)
    result = job.snapshot().items[0].result
    assert result is not None and not result.cached and result.batch_size == 1
    image = Image.open(io.BytesIO(result.png))
    assert image.format == "PNG" and image.size == (OPTIONS.width, OPTIONS.height)
    assert {"queue", "encode", "diffusion", "decode", "png"} <= set(result.timings_ms)


def test_result_key_changes_with_every_field_and_is_stable() -> None:
    base = _key()
    assert base == _key()
    changed = [
        _key(user_id="bob"),
        _key(person_version="p2"),
        _key(garment_version="g2"),
        _key(model="other"),
        _key(seed=43),
        _key(options=replace(OPTIONS, steps=5)),
        _key(options=replace(OPTIONS, guidance_scale=2.5)),
        _key(options=replace(OPTIONS, scheduler="euler")),
        _key(finish="paste_back=1;framing=768x1024"),
        _key(finish="paste_back=0;framing=768x1024"),
        _key(finish="paste_back=1;framing=original"),
    ]
    assert len({base, *changed}) == len(changed) + 1


def test_an_identical_request_is_answered_from_the_cache(start: StartScheduler) -> None:
    fake = FakePipeline()
    cache = InMemoryResultCache()
    scheduler = start(fake, cache=cache)
    first = scheduler.submit("alice", [make_sample(seed=5)], OPTIONS, [_key(seed=5)])
    assert first.wait(WAIT_S)
    again = scheduler.submit(
        "alice", [make_sample(seed=5), make_sample(seed=6)], OPTIONS, [_key(seed=5), None]
    )
    assert again.wait(WAIT_S)
    fresh, hit = first.snapshot().items[0].result, again.snapshot().items[0].result
    assert fresh is not None and hit is not None
    assert hit.cached and hit.png == fresh.png
    assert fake.batch_sizes() == [1, 1]  # only the uncached item ran
    only_cached = scheduler.submit("alice", [make_sample(seed=5)], OPTIONS, [_key(seed=5)])
    assert only_cached.done and only_cached.device is None
    assert only_cached.snapshot().state is JobState.SUCCEEDED


def test_the_finisher_runs_before_the_only_encode(start: StartScheduler) -> None:
    engine_images: list[Image.Image] = []

    def finisher(image: Image.Image) -> Image.Image:
        engine_images.append(image)
        return ImageOps.invert(image)

    cache = InMemoryResultCache()
    scheduler = start(cache=cache)
    job = scheduler.submit("alice", [make_sample(seed=3)], OPTIONS, [_key(seed=3)], [finisher])
    assert job.wait(WAIT_S)
    result = job.snapshot().items[0].result
    assert result is not None and "finish" in result.timings_ms
    (engine_image,) = engine_images
    png = Image.open(io.BytesIO(result.png))
    assert png.tobytes() == ImageOps.invert(engine_image).tobytes()
    assert cache.get(_key(seed=3)) == result.png  # the cache holds the finished image


def test_the_in_memory_cache_is_bounded_in_bytes() -> None:
    cache = InMemoryResultCache(max_bytes=10)
    cache.put("a", b"12345")
    cache.put("b", b"12345")
    assert cache.get("a") == b"12345"  # a is now the most recently used
    cache.put("c", b"12345")
    assert cache.get("b") is None
    assert cache.get("a") == b"12345" and cache.get("c") == b"12345"


async def _collect(job: Job) -> list[JobEvent]:
    return [event async for event in job.events()]


def test_events_stream_progress_then_items_then_finished(start: StartScheduler) -> None:
    fake = FakePipeline()
    fake.gate.clear()
    scheduler = start(fake, max_batch=2, batch_window_ms=60_000)
    job = scheduler.submit("alice", [make_sample("a0"), make_sample("a1")], OPTIONS)

    async def watch() -> list[JobEvent]:
        task = asyncio.create_task(_collect(job))
        await asyncio.sleep(0)  # the subscriber is in before the worker moves
        fake.gate.set()
        return await asyncio.wait_for(task, WAIT_S)

    events = asyncio.run(watch())
    progress = [e for e in events if isinstance(e, Progress)]
    assert [(e.step, e.total_steps) for e in progress] == [(2, 8), (4, 8), (6, 8), (8, 8)]
    assert all(isinstance(e, Progress) for e in events[: len(progress)])
    items = events[len(progress) : -1]
    assert sorted(e.index for e in items if isinstance(e, ItemFinished)) == [0, 1]
    assert len(items) == 2
    assert isinstance(events[-1], JobFinished) and events[-1].state is JobState.SUCCEEDED
    assert {e.kind for e in events} == {"progress", "item", "finished"}
    assert asyncio.run(_collect(job)) == events  # a late subscriber gets the same stream


def test_metrics_record_batches_outcomes_and_queue_depth(start: StartScheduler) -> None:
    fake = FakePipeline(invalid_tags={"bad"})
    fake.gate.clear()
    scheduler = start(fake, max_batch=4)
    first = scheduler.submit("alice", [make_sample("first")], OPTIONS)
    assert fake.blocked.wait(WAIT_S)
    job = scheduler.submit("bob", [make_sample(t) for t in ("b0", "bad", "b2")], OPTIONS)
    registry = scheduler.metrics.registry
    assert registry.get_sample_value("vton_queue_depth", {"device": "cpu"}) == 3
    fake.gate.set()
    assert first.wait(WAIT_S) and job.wait(WAIT_S)
    assert registry.get_sample_value("vton_queue_depth", {"device": "cpu"}) == 0
    assert registry.get_sample_value("vton_batch_size_count", {"device": "cpu"}) == 2
    assert registry.get_sample_value("vton_batch_size_sum", {"device": "cpu"}) == 4
    assert registry.get_sample_value("vton_items_total", {"outcome": "succeeded"}) == 3
    assert registry.get_sample_value("vton_items_total", {"outcome": "error"}) == 1
    assert registry.get_sample_value("vton_phase_seconds_count", {"phase": "diffusion"}) == 3
