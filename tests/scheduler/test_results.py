"""Results: post-processed values with timings, items settled at submit, the job table's one
expiry, event streams and metrics."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.fakes import FakePipeline, make_sample
from tests.scheduler.conftest import OPTIONS, WAIT_S, StartScheduler
from vton.engine.types import TryOnOutput
from vton.errors import InvalidInput, NotRegistered
from vton.scheduler import (
    ItemFinished,
    ItemResult,
    Job,
    JobEvent,
    JobFinished,
    JobState,
    Progress,
    WorkItem,
)

pytestmark = pytest.mark.timeout(30)


def test_a_result_is_the_post_process_value_with_timings(start: StartScheduler) -> None:
    seen: list[tuple[str, TryOnOutput]] = []

    def post_process(item: WorkItem, output: TryOnOutput, timings: dict[str, float]) -> object:
        seen.append((item.sample.description or "", output))
        timings["png"] = 2.5
        return f"value of {item.sample.description}"

    job = start(post_process=post_process).submit("alice", [make_sample("a", seed=7)], OPTIONS)
    assert job.wait(WAIT_S)
    result = job.snapshot().items[0].result
    assert result is not None and not result.cached and result.batch_size == 1
    assert result.value == "value of a"
    ((tag, output),) = seen
    assert tag == "a" and output.pil.size == (OPTIONS.width, OPTIONS.height)
    assert {"queue", "encode", "diffusion", "decode", "png"} <= set(result.timings_ms)
    assert result.timings_ms["png"] == 2.5


def test_items_settled_at_submit_keep_the_requests_order(start: StartScheduler) -> None:
    fake = FakePipeline()
    scheduler = start(fake)
    cached = ItemResult(b"cached image", {}, cached=True)
    missing = InvalidInput("garment: not registered")
    job = scheduler.submit("alice", [missing, make_sample("run"), cached], OPTIONS)
    assert job.wait(WAIT_S)
    snapshot = job.snapshot()
    assert snapshot.state is JobState.SUCCEEDED
    assert [item.state for item in snapshot.items] == [
        JobState.FAILED,
        JobState.SUCCEEDED,
        JobState.SUCCEEDED,
    ]
    assert snapshot.items[0].error is missing
    assert snapshot.items[2].result is cached
    assert fake.batch_sizes() == [1]  # only the sample ran
    # the item that never runs is out of the step count; the cached one counts as done
    assert (snapshot.step, snapshot.total_steps) == (2 * OPTIONS.steps, 2 * OPTIONS.steps)


def test_a_job_settled_at_submit_finishes_without_a_worker(start: StartScheduler) -> None:
    scheduler = start()
    cached = ItemResult(b"cached image", {}, cached=True)
    job = scheduler.submit("alice", [cached, InvalidInput("garment: broken")], OPTIONS)
    assert job.done and job.device is None
    assert job.snapshot().state is JobState.SUCCEEDED
    failed = scheduler.submit("alice", [InvalidInput("garment: broken")], OPTIONS)
    assert failed.done and failed.snapshot().state is JobState.FAILED


def test_a_job_not_kept_leaves_the_table_when_it_finishes(start: StartScheduler) -> None:
    scheduler = start(job_ttl_s=600.0)
    job = scheduler.submit("alice", [make_sample()], OPTIONS, keep=False)
    assert scheduler.get(job.id, "alice") is job  # in the table while it runs
    assert job.wait(WAIT_S)
    with pytest.raises(NotRegistered):
        scheduler.get(job.id, "alice")
    with pytest.raises(NotRegistered):
        scheduler.cancel(job.id, "alice")
    assert job.snapshot().items[0].result is not None  # its caller still holds it


def test_a_kept_job_answers_get_and_cancel_until_its_ttl(start: StartScheduler) -> None:
    ttl_s = 1.0
    scheduler = start(job_ttl_s=ttl_s)
    job = scheduler.submit("alice", [make_sample()], OPTIONS)
    assert job.wait(WAIT_S)
    finished = time.monotonic()
    assert scheduler.get(job.id, "alice") is job
    assert scheduler.cancel(job.id, "alice") is job  # a finished job is left as it is
    assert job.snapshot().state is JobState.SUCCEEDED
    time.sleep(max(0.0, finished + ttl_s + 0.05 - time.monotonic()))
    with pytest.raises(NotRegistered):
        scheduler.get(job.id, "alice")
    with pytest.raises(NotRegistered):
        scheduler.cancel(job.id, "alice")


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
