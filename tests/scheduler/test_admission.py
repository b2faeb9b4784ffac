"""Admission: bounded queues with Retry-After, deadlines, and user -> device routing."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.fakes import FakePipeline, make_sample
from tests.scheduler.conftest import OPTIONS, WAIT_S, StartScheduler
from vton.errors import InvalidInput
from vton.scheduler import JobState, JobTimeout, QueueFull, SchedulerConfig
from vton.scheduler.batch_times import FIRST_BATCH_S, SMOOTHING, BatchTimes
from vton.scheduler.job import Job
from vton.scheduler.routing import OVERFLOW_BATCHES, choose_device, home_device
from vton.scheduler.stages import WorkItem
from vton.scheduler.work_queue import WorkQueue

pytestmark = pytest.mark.timeout(30)


def test_a_full_queue_raises_queue_full_with_retry_after(start: StartScheduler) -> None:
    fake = FakePipeline()
    fake.gate.clear()
    scheduler = start(fake, max_queue=3, max_batch=1)
    running = scheduler.submit("alice", [make_sample("running")], OPTIONS)
    assert fake.blocked.wait(WAIT_S)
    scheduler.submit("alice", [make_sample("q0"), make_sample("q1")], OPTIONS)
    with pytest.raises(QueueFull) as full:
        scheduler.submit("bob", [make_sample("q2"), make_sample("q3")], OPTIONS)
    assert full.value.retry_after_s >= 1.0
    scheduler.submit("bob", [make_sample("q2")], OPTIONS)  # one item still fits
    with pytest.raises(QueueFull):
        scheduler.submit("carol", [make_sample("q3")], OPTIONS)
    fake.gate.set()
    assert running.wait(WAIT_S)


def test_a_job_larger_than_the_queue_is_invalid_not_full(start: StartScheduler) -> None:
    scheduler = start(max_queue=2)
    with pytest.raises(InvalidInput, match="exceed"):
        scheduler.submit("alice", [make_sample() for _ in range(3)], OPTIONS)


def test_only_the_samples_to_run_count_against_the_queue(start: StartScheduler) -> None:
    scheduler = start(max_queue=2)
    settled = [InvalidInput("garment: not registered"), InvalidInput("garment: broken")]
    job = scheduler.submit("alice", [*settled, make_sample("a"), make_sample("b")], OPTIONS)
    assert job.wait(WAIT_S) and job.snapshot().state is JobState.SUCCEEDED


def test_deadline_fails_queued_and_running_jobs_with_timeout(start: StartScheduler) -> None:
    fake = FakePipeline(hold_after=1)
    scheduler = start(fake, max_batch=1, request_timeout_s=1.0)
    measured = scheduler.submit("alice", [make_sample("measured")], OPTIONS)  # batches are fast:
    assert measured.wait(WAIT_S)  # the next two are expected to finish in time, and are admitted
    fake.gate.clear()
    running = scheduler.submit("alice", [make_sample("running")], OPTIONS)
    assert fake.blocked.wait(WAIT_S)
    queued = scheduler.submit("bob", [make_sample("queued")], OPTIONS)
    assert queued.wait(WAIT_S) and running.wait(WAIT_S)
    for job in (queued, running):
        snapshot = job.snapshot()
        assert snapshot.state is JobState.FAILED
        assert isinstance(snapshot.error, JobTimeout)
        assert isinstance(snapshot.items[0].error, JobTimeout)
    assert scheduler.loads() == {"cpu": 1}  # the queued item left the queue
    fake.gate.set()
    assert fake.calls[1].ended.wait(WAIT_S)
    assert fake.calls[1].outcome == "aborted"  # the running batch stopped between steps
    assert [call.tags for call in fake.calls] == [("measured",), ("running",)]


def test_a_job_expected_to_finish_past_its_deadline_is_refused_while_the_queue_has_room(
    start: StartScheduler,
) -> None:
    step_s = 0.05  # a batch of OPTIONS (4 steps) takes >= 0.2 s
    fake = FakePipeline(step_s=step_s)
    scheduler = start(fake, max_queue=64, max_batch=1, request_timeout_s=1.0)
    measured = scheduler.submit("alice", [make_sample("measured")], OPTIONS)
    assert measured.wait(WAIT_S) and measured.snapshot().state is JobState.SUCCEEDED
    fake.gate.clear()
    running = scheduler.submit("alice", [make_sample("running")], OPTIONS)
    assert fake.blocked.wait(WAIT_S)
    admitted = []
    with pytest.raises(QueueFull) as refused:
        for i in range(20):  # batches >= 0.2 s: 3 more at most are expected to finish within 1 s
            admitted.append(scheduler.submit("bob", [make_sample(f"q{i}")], OPTIONS))
    assert 1 <= len(admitted) < 4
    assert scheduler.loads() == {"cpu": 1 + len(admitted)}  # far below max_queue
    assert refused.value.retry_after_s >= OPTIONS.steps * step_s
    fake.gate.set()
    assert all(job.wait(WAIT_S) for job in [running, *admitted])


def test_retry_after_is_at_least_one_measured_batch_and_jittered(start: StartScheduler) -> None:
    batch_s = OPTIONS.steps * 0.5  # 2 s, twice the assumed first batch
    fake = FakePipeline(step_s=0.5)
    scheduler = start(fake, max_queue=1, max_batch=1)
    measured = scheduler.submit("alice", [make_sample("measured")], OPTIONS)
    assert measured.wait(WAIT_S) and measured.snapshot().state is JobState.SUCCEEDED
    fake.gate.clear()
    scheduler.submit("alice", [make_sample("running")], OPTIONS)
    assert fake.blocked.wait(WAIT_S)
    scheduler.submit("alice", [make_sample("queued")], OPTIONS)
    retry_after = []
    for _ in range(2):
        with pytest.raises(QueueFull) as full:
            scheduler.submit("bob", [make_sample("refused")], OPTIONS)
        retry_after.append(full.value.retry_after_s)
    assert min(retry_after) >= batch_s
    assert retry_after[0] != retry_after[1]


def test_batch_times_by_size_scale_from_the_nearest_measured_size() -> None:
    times = BatchTimes(max_batch=8)
    assert times.of(8) == times.of(1) == FIRST_BATCH_S  # nothing measured yet
    times.record(1, 0.5)
    assert times.of(1) == 0.5 and times.of(8) == 4.0  # in proportion: errs long
    times.record(8, 2.0)
    assert times.of(8) == 2.0 and times.of(6) == 1.5 and times.of(2) == 1.0
    times.record(8, 3.0)
    assert times.of(8) == pytest.approx(2.0 + SMOOTHING * 1.0)  # a moving average per size
    assert times.to_finish(19) == pytest.approx(2 * times.of(8) + times.of(3))
    assert times.to_finish(0) == times.to_finish(-2) == 0.0
    assert times.average_s == pytest.approx(0.5 + SMOOTHING * 1.5 + SMOOTHING * (3.0 - 0.8))


def test_the_queue_fails_items_whose_deadline_passed_instead_of_batching_them() -> None:
    late = Job("alice", 2, OPTIONS.steps, 0.001, "cpu", lambda _job: None)
    live = Job("bob", 1, OPTIONS.steps, 60.0, "cpu", lambda _job: None)
    queue = WorkQueue(capacity=8)
    queue.put([WorkItem(late, i, make_sample(f"late{i}"), OPTIONS, 0.0) for i in range(2)])
    queue.put([WorkItem(live, 0, make_sample("live"), OPTIONS, 0.0)])
    while time.monotonic() <= late.deadline:
        time.sleep(0.001)  # no deadline watcher here: only the queue can fail the late job
    batch = queue.next_batch(window_s=0.0, max_batch=8)
    assert batch is not None and [item.job for item in batch.items] == [live]
    snapshot = late.snapshot()
    assert snapshot.state is JobState.FAILED and isinstance(snapshot.error, JobTimeout)
    assert queue.depth() == 0


def test_the_queue_fails_items_that_cannot_finish_before_their_deadline() -> None:
    short = Job("alice", 1, OPTIONS.steps, 2.0, "cpu", lambda _job: None)
    long = Job("bob", 1, OPTIONS.steps, 60.0, "cpu", lambda _job: None)
    queue = WorkQueue(capacity=8)
    queue.put([WorkItem(short, 0, make_sample("short"), OPTIONS, 0.0)])
    queue.put([WorkItem(long, 0, make_sample("long"), OPTIONS, 0.0)])
    sizes = []

    def run_s(n: int) -> float:  # a batch of two would take 3 s, of one 1 s
        sizes.append(n)
        return 1.0 + 2.0 * (n - 1)

    batch = queue.next_batch(window_s=0.0, max_batch=8, run_s=run_s)
    assert batch is not None and [item.job for item in batch.items] == [long]
    assert sizes == [2, 1]
    assert isinstance(short.snapshot().error, JobTimeout)


def test_home_device_is_a_stable_hash_of_the_user_id() -> None:
    # Fixed values: the mapping must not change across processes or Python versions.
    assert [home_device(u, 4) for u in ("alice", "bob", "carol", "dave")] == [3, 2, 2, 3]
    spread = Counter(home_device(f"user-{i}", 4) for i in range(4000))
    assert all(900 < spread[d] < 1100 for d in range(4))


def test_choose_device_prefers_home_until_it_is_much_longer() -> None:
    margin = OVERFLOW_BATCHES * 4
    home = home_device("bob", 2)
    other = 1 - home
    loads = [0, 0]
    loads[home] = margin
    assert choose_device("bob", loads, [True, True], max_batch=4) == home
    loads[home] = margin + 1
    assert choose_device("bob", loads, [True, True], max_batch=4) == other
    room = [True, True]
    room[home] = False
    assert choose_device("bob", [0, 0], room, max_batch=4) == other
    assert choose_device("bob", [0, 0], [False, False], max_batch=4) is None


def test_jobs_go_to_the_users_device_and_overflow_when_it_is_much_longer(
    start: StartScheduler,
) -> None:
    fakes = {"gpu0": FakePipeline(), "gpu1": FakePipeline()}
    fakes["gpu0"].gate.clear()
    scheduler = start(devices=fakes, max_batch=1)
    assert home_device("bob", 2) == 0 and home_device("alice", 2) == 1
    first = scheduler.submit("bob", [make_sample("b0")], OPTIONS)
    assert fakes["gpu0"].blocked.wait(WAIT_S)
    # gpu0 holds 1 running; it stays home while its load <= gpu1's + OVERFLOW_BATCHES batches
    jobs = [first] + [scheduler.submit("bob", [make_sample(f"b{i}")], OPTIONS) for i in (1, 2, 3)]
    assert [job.device for job in jobs] == ["gpu0", "gpu0", "gpu0", "gpu1"]
    assert jobs[3].wait(WAIT_S)
    alice = scheduler.submit("alice", [make_sample("a")], OPTIONS)
    assert alice.device == "gpu1" and alice.wait(WAIT_S)
    fakes["gpu0"].gate.set()
    assert all(job.wait(WAIT_S) for job in jobs)
    assert [call.tags for call in fakes["gpu1"].calls] == [("b3",), ("a",)]
    assert [call.tags for call in fakes["gpu0"].calls] == [("b0",), ("b1",), ("b2",)]


def test_config_is_checked() -> None:
    with pytest.raises(InvalidInput, match="max_batch"):
        SchedulerConfig(max_batch=0)
    with pytest.raises(InvalidInput, match="devices"):
        SchedulerConfig(devices=("cpu", "cpu"))
