"""Each worker runs its `prepare` (the service's warm-up) on its own thread before serving, and
start() returns only when every worker has prepared."""

from __future__ import annotations

import threading

import pytest

from tests.fakes import FakePipeline, make_sample
from tests.scheduler.conftest import OPTIONS, WAIT_S
from vton.scheduler import DevicePipelines, Scheduler, SchedulerClosed, SchedulerConfig

pytestmark = pytest.mark.timeout(30)


def scheduler_for(prepare: dict, fakes: dict[str, FakePipeline] | None = None) -> Scheduler:
    fakes = fakes or {"cpu": FakePipeline()}
    config = SchedulerConfig(devices=tuple(fakes), batch_window_ms=0)
    pipelines = {device: DevicePipelines(fake, None) for device, fake in fakes.items()}
    return Scheduler(config, pipelines, prepare=prepare)


def test_prepare_runs_on_the_thread_that_serves_the_batches() -> None:
    threads: list[str] = []

    class RecordingPipeline(FakePipeline):
        def __call__(self, *args, **kwargs):
            threads.append(threading.current_thread().name)
            return super().__call__(*args, **kwargs)

    scheduler = scheduler_for(
        {"cpu": lambda: threads.append(threading.current_thread().name)},
        {"cpu": RecordingPipeline()},
    )
    with scheduler:
        assert threads == ["vton-worker-cpu"]  # prepared before start() returned
        job = scheduler.submit("alice", [make_sample("s0")], OPTIONS)
        assert job.wait(WAIT_S)
    assert threads == ["vton-worker-cpu", "vton-worker-cpu"]


def test_start_waits_for_every_worker_which_prepare_side_by_side() -> None:
    # Both prepares must be inside the barrier at once: run one after another, they would time out.
    barrier = threading.Barrier(2, timeout=WAIT_S)
    fakes = {"cuda:0": FakePipeline(), "cuda:1": FakePipeline()}
    release = threading.Event()

    def prepare() -> None:
        barrier.wait()
        release.wait(WAIT_S)

    scheduler = scheduler_for({"cuda:0": prepare, "cuda:1": prepare}, fakes)
    started = threading.Event()
    starter = threading.Thread(target=lambda: (scheduler.start(), started.set()))
    starter.start()
    try:
        assert not started.wait(0.2)  # both workers are still preparing
        release.set()
        assert started.wait(WAIT_S)
        job = scheduler.submit("alice", [make_sample("s0")], OPTIONS)
        assert job.wait(WAIT_S)
    finally:
        release.set()
        starter.join(WAIT_S)
        scheduler.shutdown()


def test_a_failed_prepare_fails_start_and_nothing_is_accepted() -> None:
    def prepare() -> None:
        raise RuntimeError("CUDA error: no kernel image is available")

    scheduler = scheduler_for({"cpu": prepare})
    with pytest.raises(RuntimeError, match="no kernel image"):
        scheduler.start()
    with pytest.raises(SchedulerClosed):
        scheduler.submit("alice", [make_sample("s0")], OPTIONS)
