"""A job's event history: every item ends with an ItemFinished however it ended, events are
numbered, and a subscriber resumes after a number; per-job deadlines and the user's job list."""

from __future__ import annotations

import asyncio

import pytest

from tests.fakes import FakePipeline, make_sample
from tests.scheduler.conftest import OPTIONS, WAIT_S, StartScheduler
from vton.errors import InvalidInput
from vton.scheduler import ItemFinished, Job, JobEvent, JobFinished, JobState, JobTimeout

pytestmark = pytest.mark.timeout(30)


def history(job: Job, after: int = -1) -> list[tuple[int, JobEvent]]:
    async def read() -> list[tuple[int, JobEvent]]:
        return [numbered async for numbered in job.numbered_events(after)]

    return asyncio.run(read())


def items_ended(events: list[tuple[int, JobEvent]]) -> dict[int, JobState | str]:
    return {
        e.index: ("ok" if e.result is not None else type(e.error).__name__)
        for _, e in events
        if isinstance(e, ItemFinished)
    }


def test_a_cancel_ends_every_unfinished_item_with_an_event(start: StartScheduler) -> None:
    fake = FakePipeline()
    fake.gate.clear()
    scheduler = start(fake, max_batch=1)
    job = scheduler.submit(
        "alice", [make_sample("a"), make_sample("b"), InvalidInput("broken")], OPTIONS
    )
    assert fake.blocked.wait(WAIT_S)
    scheduler.cancel(job.id, "alice")
    assert job.wait(WAIT_S)
    events = history(job)
    assert items_ended(events) == {0: "JobCancelled", 1: "JobCancelled", 2: "InvalidInput"}
    assert isinstance(events[-1][1], JobFinished)
    assert [n for n, _ in events] == list(range(len(events)))


def test_a_jobs_own_deadline_ends_its_items_with_events(start: StartScheduler) -> None:
    fake = FakePipeline()
    fake.gate.clear()
    scheduler = start(fake, max_batch=1, request_timeout_s=60.0)
    job = scheduler.submit("alice", [make_sample("a"), make_sample("b")], OPTIONS, timeout_s=0.3)
    assert job.timeout_s == 0.3
    assert job.wait(WAIT_S)
    assert job.snapshot().state is JobState.FAILED
    assert items_ended(history(job)) == {0: "JobTimeout", 1: "JobTimeout"}
    assert isinstance(job.snapshot().items[0].error, JobTimeout)


def test_events_resume_after_a_number(start: StartScheduler) -> None:
    scheduler = start()
    job = scheduler.submit("alice", [make_sample("a"), make_sample("b")], OPTIONS)
    assert job.wait(WAIT_S)
    events = history(job)
    assert history(job, after=2) == events[3:]
    assert history(job, after=len(events) - 1) == []
    assert history(job, after=10_000) == []


def test_jobs_of_lists_a_users_kept_jobs_newest_first(start: StartScheduler) -> None:
    scheduler = start()
    first = scheduler.submit("alice", [make_sample("a")], OPTIONS)
    second = scheduler.submit("alice", [make_sample("b")], OPTIONS)
    unkept = scheduler.submit("alice", [make_sample("c")], OPTIONS, keep=False)
    other = scheduler.submit("bob", [make_sample("d")], OPTIONS)
    for job in (first, second, unkept, other):
        assert job.wait(WAIT_S)
    assert scheduler.jobs_of("alice") == [second, first]
    assert scheduler.jobs_of("carol") == []
