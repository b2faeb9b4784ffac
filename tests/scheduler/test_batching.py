"""Dynamic batching: across requests and users, only compatible options, up to max_batch."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from tests.fakes import FakePipeline, make_sample
from tests.scheduler.conftest import OPTIONS, WAIT_S, StartScheduler
from vton.scheduler import JobState
from vton.scheduler.job import Job
from vton.scheduler.stages import WorkItem
from vton.scheduler.work_queue import WorkQueue

pytestmark = pytest.mark.timeout(30)


def test_a_full_batch_leaves_at_once_across_users(start: StartScheduler) -> None:
    fake = FakePipeline()
    scheduler = start(fake, max_batch=4, batch_window_ms=60_000)
    jobs = [
        scheduler.submit(f"user-{i}", [make_sample(f"s{i}", seed=i)], OPTIONS) for i in range(4)
    ]
    assert all(job.wait(WAIT_S) for job in jobs)
    assert fake.batch_sizes() == [4]
    for job in jobs:
        snapshot = job.snapshot()
        assert snapshot.state is JobState.SUCCEEDED
        assert snapshot.items[0].result is not None
        assert snapshot.items[0].result.batch_size == 4


def test_a_partial_batch_waits_for_the_window_then_leaves_together(start: StartScheduler) -> None:
    fake = FakePipeline()
    scheduler = start(fake, max_batch=8, batch_window_ms=300)
    started = time.monotonic()
    jobs = [scheduler.submit(f"user-{i}", [make_sample(f"s{i}")], OPTIONS) for i in range(3)]
    assert all(job.wait(WAIT_S) for job in jobs)
    assert fake.batch_sizes() == [3]
    assert time.monotonic() - started >= 0.3


def test_items_that_waited_behind_a_busy_worker_share_the_next_batch(
    start: StartScheduler,
) -> None:
    fake = FakePipeline()
    fake.gate.clear()
    scheduler = start(fake, max_batch=8)
    first = scheduler.submit("alice", [make_sample("first")], OPTIONS)
    assert fake.blocked.wait(WAIT_S)
    later = [scheduler.submit(f"user-{i}", [make_sample(f"s{i}")], OPTIONS) for i in range(5)]
    fake.gate.set()
    assert all(job.wait(WAIT_S) for job in [first, *later])
    assert fake.batch_sizes() == [1, 5]


def test_a_multi_garment_job_shares_a_batch_with_other_requests(start: StartScheduler) -> None:
    fake = FakePipeline()
    fake.gate.clear()
    scheduler = start(fake, max_batch=8)
    first = scheduler.submit("alice", [make_sample("first")], OPTIONS)
    assert fake.blocked.wait(WAIT_S)
    many = scheduler.submit("bob", [make_sample(f"bob{i}") for i in range(3)], OPTIONS)
    one = scheduler.submit("carol", [make_sample("carol")], OPTIONS)
    fake.gate.set()
    assert first.wait(WAIT_S) and many.wait(WAIT_S) and one.wait(WAIT_S)
    assert fake.calls[1].tags == ("bob0", "bob1", "bob2", "carol")


def test_incompatible_options_never_share_a_batch(start: StartScheduler) -> None:
    fake = FakePipeline()
    fake.gate.clear()
    scheduler = start(fake, max_batch=16)
    variants = [
        OPTIONS,
        replace(OPTIONS, steps=5),
        replace(OPTIONS, scheduler="euler"),
        replace(OPTIONS, guidance_scale=3.0),
        replace(OPTIONS, height=24),
        replace(OPTIONS, width=16),
    ]
    blocker = scheduler.submit("alice", [make_sample("blocker")], OPTIONS)
    assert fake.blocked.wait(WAIT_S)
    submitted = {}
    jobs = [blocker]
    for round_ in range(2):
        for k, options in enumerate(variants):
            tag = f"v{k}-r{round_}"
            submitted[tag] = options
            jobs.append(scheduler.submit(f"user-{k}", [make_sample(tag)], options))
    fake.gate.set()
    assert all(job.wait(WAIT_S) for job in jobs)
    calls = fake.calls[1:]
    assert sorted(tag for call in calls for tag in call.tags) == sorted(submitted)
    assert len(calls) == len(variants)
    for call in calls:
        assert all(submitted[tag] == call.options for tag in call.tags)
        assert len(call.tags) == 2


def test_max_batch_is_respected(start: StartScheduler) -> None:
    fake = FakePipeline()
    fake.gate.clear()
    scheduler = start(fake, max_batch=4)
    blocker = scheduler.submit("alice", [make_sample("blocker")], OPTIONS)
    assert fake.blocked.wait(WAIT_S)
    job = scheduler.submit("bob", [make_sample(f"b{i}") for i in range(10)], OPTIONS)
    fake.gate.set()
    assert blocker.wait(WAIT_S) and job.wait(WAIT_S)
    assert fake.batch_sizes() == [1, 4, 4, 2]
    assert job.snapshot().state is JobState.SUCCEEDED


def _item(job: Job, index: int, options=OPTIONS, enqueued_at: float = 0.0) -> WorkItem:
    return WorkItem(job, index, make_sample(f"i{index}"), options, enqueued_at)


def test_queue_takes_the_oldest_items_options_and_keeps_the_others_in_order() -> None:
    job = Job("alice", 5, OPTIONS.steps, 60.0, "cpu", lambda _job: None)
    other = replace(OPTIONS, steps=9)
    items = [_item(job, i, other if i in (1, 4) else OPTIONS) for i in range(5)]
    queue = WorkQueue(capacity=8)
    queue.put(items)
    first = queue.next_batch(window_s=0.0, max_batch=2)
    assert first is not None and [i.index for i in first.items] == [0, 2]
    second = queue.next_batch(window_s=0.0, max_batch=2)
    assert second is not None and second.options == other
    assert [i.index for i in second.items] == [1, 4]
    assert queue.depth() == 1
