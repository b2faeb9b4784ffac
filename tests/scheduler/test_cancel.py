"""Cancellation of queued and running jobs, and graceful shutdown."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from tests.fakes import FakePipeline, make_sample
from tests.scheduler.conftest import OPTIONS, WAIT_S, StartScheduler
from vton.errors import NotRegistered
from vton.scheduler import JobCancelled, JobState, SchedulerClosed

pytestmark = pytest.mark.timeout(30)


def test_cancel_a_queued_job_takes_it_out_of_the_queue(start: StartScheduler) -> None:
    fake = FakePipeline()
    fake.gate.clear()
    scheduler = start(fake, max_batch=1)
    running = scheduler.submit("alice", [make_sample("running")], OPTIONS)
    assert fake.blocked.wait(WAIT_S)
    queued = scheduler.submit("bob", [make_sample("q0"), make_sample("q1")], OPTIONS)
    assert scheduler.loads() == {"cpu": 3}
    scheduler.cancel(queued.id, "bob")
    assert queued.wait(WAIT_S)
    snapshot = queued.snapshot()
    assert snapshot.state is JobState.CANCELLED
    assert isinstance(snapshot.error, JobCancelled)
    assert [item.state for item in snapshot.items] == [JobState.CANCELLED] * 2
    assert scheduler.loads() == {"cpu": 1}
    fake.gate.set()
    assert running.wait(WAIT_S)
    assert running.snapshot().state is JobState.SUCCEEDED
    assert [call.tags for call in fake.calls] == [("running",)]


def test_cancel_a_running_batch_stops_it_between_steps(start: StartScheduler) -> None:
    fake = FakePipeline(hold_after=2)
    fake.gate.clear()
    scheduler = start(fake)
    options = replace(OPTIONS, steps=50)
    job = scheduler.submit("alice", [make_sample("a0"), make_sample("a1")], options)
    assert fake.blocked.wait(WAIT_S)
    snapshot = job.snapshot()
    assert snapshot.state is JobState.RUNNING
    assert (snapshot.step, snapshot.total_steps) == (4, 100)
    scheduler.cancel(job.id, "alice")
    fake.gate.set()
    assert fake.calls[0].ended.wait(WAIT_S)
    assert fake.calls[0].outcome == "aborted"
    assert fake.calls[0].steps_done == 3
    assert job.snapshot().state is JobState.CANCELLED


def test_a_running_batch_goes_on_while_one_of_its_jobs_is_live(start: StartScheduler) -> None:
    fake = FakePipeline(hold_after=1)
    fake.gate.clear()
    scheduler = start(fake, max_batch=2, batch_window_ms=60_000)
    cancelled = scheduler.submit("alice", [make_sample("a")], OPTIONS)
    kept = scheduler.submit("bob", [make_sample("b")], OPTIONS)
    assert fake.blocked.wait(WAIT_S)
    scheduler.cancel(cancelled.id, "alice")
    fake.gate.set()
    assert kept.wait(WAIT_S)
    assert fake.calls[0].outcome == "ok"
    assert kept.snapshot().state is JobState.SUCCEEDED
    assert cancelled.snapshot().state is JobState.CANCELLED


def test_another_users_job_is_not_found(start: StartScheduler) -> None:
    scheduler = start()
    job = scheduler.submit("alice", [make_sample()], OPTIONS)
    with pytest.raises(NotRegistered):
        scheduler.get(job.id, "mallory")
    with pytest.raises(NotRegistered):
        scheduler.cancel(job.id, "mallory")
    with pytest.raises(NotRegistered):
        scheduler.get("no-such-job", "alice")
    assert scheduler.get(job.id, "alice") is job


def test_shutdown_finishes_the_running_batch_and_cancels_the_queued(
    start: StartScheduler,
) -> None:
    fake = FakePipeline(hold_after=1)
    fake.gate.clear()
    scheduler = start(fake, max_batch=1)
    running = scheduler.submit("alice", [make_sample("running")], OPTIONS)
    assert fake.blocked.wait(WAIT_S)
    queued = scheduler.submit("bob", [make_sample("queued")], OPTIONS)
    stopper = threading.Thread(target=scheduler.shutdown)
    stopper.start()
    assert queued.wait(WAIT_S)
    assert queued.snapshot().state is JobState.CANCELLED
    assert "shutting down" in str(queued.snapshot().error)
    with pytest.raises(SchedulerClosed):
        scheduler.submit("carol", [make_sample()], OPTIONS)
    assert not running.done
    fake.gate.set()
    stopper.join(WAIT_S)
    assert not stopper.is_alive()
    assert running.snapshot().state is JobState.SUCCEEDED
    assert [call.tags for call in fake.calls] == [("running",)]
