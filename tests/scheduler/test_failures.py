"""Failures stay with the item that causes them: out of memory, bad inputs, bad images."""

from __future__ import annotations

import pytest

from tests.fakes import FakePipeline, make_sample
from tests.scheduler.conftest import OPTIONS, WAIT_S, StartScheduler
from vton.engine.types import TryOnOutput
from vton.errors import InvalidInput
from vton.scheduler import EngineFailed, JobState, NonFiniteOutput, OutOfMemory, WorkItem

pytestmark = pytest.mark.timeout(30)


def test_oom_splits_the_batch_until_every_item_succeeds(start: StartScheduler) -> None:
    fake = FakePipeline(oom_above=2)
    scheduler = start(fake, max_batch=8, batch_window_ms=60_000)
    job = scheduler.submit("alice", [make_sample(f"s{i}", seed=i) for i in range(8)], OPTIONS)
    assert job.wait(WAIT_S)
    snapshot = job.snapshot()
    assert snapshot.state is JobState.SUCCEEDED
    assert all(item.state is JobState.SUCCEEDED for item in snapshot.items)
    assert fake.batch_sizes() == [8, 4, 2, 2, 4, 2, 2]
    assert [call.outcome for call in fake.calls] == ["oom", "oom", "ok", "ok", "oom", "ok", "ok"]
    splits = scheduler.metrics.registry.get_sample_value(
        "vton_batch_splits_total", {"device": "cpu"}
    )
    assert splits == 3


def test_an_item_that_ooms_alone_fails_alone(start: StartScheduler) -> None:
    fake = FakePipeline(oom_tags={"huge"})
    scheduler = start(fake, max_batch=4, batch_window_ms=60_000)
    tags = ["s0", "huge", "s2", "s3"]
    job = scheduler.submit("alice", [make_sample(tag) for tag in tags], OPTIONS)
    assert job.wait(WAIT_S)
    snapshot = job.snapshot()
    assert snapshot.state is JobState.SUCCEEDED
    assert [item.state for item in snapshot.items] == [
        JobState.SUCCEEDED,
        JobState.FAILED,
        JobState.SUCCEEDED,
        JobState.SUCCEEDED,
    ]
    assert isinstance(snapshot.items[1].error, OutOfMemory)


def test_a_single_item_job_that_ooms_fails_with_out_of_memory(start: StartScheduler) -> None:
    scheduler = start(FakePipeline(oom_above=0))
    job = scheduler.submit("alice", [make_sample()], OPTIONS)
    assert job.wait(WAIT_S)
    snapshot = job.snapshot()
    assert snapshot.state is JobState.FAILED
    assert isinstance(snapshot.error, OutOfMemory)


def test_one_bad_item_fails_alone_with_its_own_error(start: StartScheduler) -> None:
    fake = FakePipeline(invalid_tags={"bad"})
    scheduler = start(fake, max_batch=4, batch_window_ms=60_000)
    other = scheduler.submit("bob", [make_sample("b0")], OPTIONS)
    job = scheduler.submit("alice", [make_sample(t) for t in ("a0", "bad", "a2")], OPTIONS)
    assert job.wait(WAIT_S) and other.wait(WAIT_S)
    items = job.snapshot().items
    assert [item.state for item in items] == [
        JobState.SUCCEEDED,
        JobState.FAILED,
        JobState.SUCCEEDED,
    ]
    assert isinstance(items[1].error, InvalidInput)
    assert "garment image" in str(items[1].error)
    assert other.snapshot().state is JobState.SUCCEEDED


def test_a_post_process_that_raises_fails_its_item_alone(start: StartScheduler) -> None:
    def post_process(item: WorkItem, output: TryOnOutput, timings: dict[str, float]) -> object:
        if item.sample.description == "broken":
            raise ValueError("no mask")
        return output

    scheduler = start(post_process=post_process, max_batch=2)
    job = scheduler.submit("alice", [make_sample("ok"), make_sample("broken")], OPTIONS)
    assert job.wait(WAIT_S)
    snapshot = job.snapshot()
    assert snapshot.state is JobState.SUCCEEDED
    assert [item.state for item in snapshot.items] == [JobState.SUCCEEDED, JobState.FAILED]
    error = snapshot.items[1].error
    assert isinstance(error, EngineFailed)
    assert str(error) == "finishing the image failed: ValueError: no mask"


def test_a_non_finite_image_is_retried_in_the_fallback(start: StartScheduler) -> None:
    fake = FakePipeline(nan_tags={"nan"})
    fallback = FakePipeline()
    scheduler = start(fake, fallback=fallback, max_batch=2, batch_window_ms=60_000)
    job = scheduler.submit("alice", [make_sample("ok"), make_sample("nan")], OPTIONS)
    assert job.wait(WAIT_S)
    snapshot = job.snapshot()
    assert [item.state for item in snapshot.items] == [JobState.SUCCEEDED] * 2
    assert [call.tags for call in fallback.calls] == [("nan",)]


@pytest.mark.parametrize("kind", ["nan", "black"])
def test_a_bad_image_fails_after_the_fallback_also_gives_one(
    start: StartScheduler, kind: str
) -> None:
    fake = FakePipeline(nan_tags={"nan"}, black_tags={"black"})
    fallback = FakePipeline(nan_tags={"nan"}, black_tags={"black"})
    scheduler = start(fake, fallback=fallback, max_batch=2, batch_window_ms=60_000)
    job = scheduler.submit("alice", [make_sample("ok"), make_sample(kind)], OPTIONS)
    assert job.wait(WAIT_S)
    items = job.snapshot().items
    assert items[0].state is JobState.SUCCEEDED
    assert items[1].state is JobState.FAILED
    assert isinstance(items[1].error, NonFiniteOutput)
    assert "safer precision" in str(items[1].error)
    assert len(fallback.calls) == 1


def test_a_bad_image_fails_at_once_without_a_fallback(start: StartScheduler) -> None:
    scheduler = start(FakePipeline(black_tags={"black"}))
    job = scheduler.submit("alice", [make_sample("black")], OPTIONS)
    assert job.wait(WAIT_S)
    snapshot = job.snapshot()
    assert snapshot.state is JobState.FAILED
    assert isinstance(snapshot.error, NonFiniteOutput)
