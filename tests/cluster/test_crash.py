"""Worker processes killed with SIGKILL: the job runs again elsewhere and completes once; a job
that kills two workers fails with a clear error; SIGTERM drains. Locks of 1 s keep it to seconds."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip(
    "bullmq", reason="the `cluster` extra is not installed: pip install -e .[cluster]"
)

from tests.cluster.conftest import REPO_ROOT
from tests.cluster.jobs import POISON_SEED, result_for, sample_job
from tests.cluster.test_queue import next_event, run
from vton.cluster.messages import TryOnResult
from vton.cluster.queue import JobContext, QueueSettings, TryOnConsumer, TryOnEvents, TryOnQueue

WORKER = Path(__file__).with_name("sleepy_worker.py")


class Workers:
    """sleepy_worker.py processes, each stopped by its PID at the end."""

    def __init__(self, settings: QueueSettings, markers: Path) -> None:
        self.settings = settings
        self.markers = markers
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, count: int) -> list[int]:
        env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT / 'src'}{os.pathsep}{REPO_ROOT}"}
        command = [
            sys.executable, str(WORKER), "--url", self.settings.url, "--queue", self.settings.name,
            "--markers", str(self.markers), "--lock-ms", str(self.settings.lock_duration_ms),
            "--stalled-ms", str(self.settings.stalled_interval_ms),
        ]  # fmt: skip
        started = [subprocess.Popen(command, env=env) for _ in range(count)]
        self.processes += started
        deadline = time.monotonic() + 30
        for process in started:
            while not (self.markers / f"ready.{process.pid}").exists():
                assert process.poll() is None, f"worker {process.pid} exited: {process.returncode}"
                assert time.monotonic() < deadline, "workers did not start in 30 s"
                time.sleep(0.05)
        return [p.pid for p in started]

    def holders(self, job_id: str) -> list[int]:
        """PIDs that took `job_id`, in no particular order."""
        return [int(p.name.split(".")[1]) for p in self.markers.glob(f"{job_id}.*.started")]

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def workers(settings: QueueSettings, tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(settings, tmp_path)
    yield pool
    pool.stop()


def test_a_killed_workers_job_completes_once_on_another(
    settings: QueueSettings, workers: Workers
) -> None:
    payload = sample_job(steps=10)  # 10 x 0.2 s
    pids = workers.start(2)

    async def scenario() -> tuple[list[str], float, int]:
        queue, events = TryOnQueue(settings), TryOnEvents(settings)
        await events.start()
        with events.subscribe("job-k") as stream:
            await queue.enqueue("job-k", payload)
            await next_event(stream, "progress")
            (victim,) = workers.holders("job-k")
            os.kill(victim, signal.SIGKILL)
            killed = time.monotonic()
            completed = await next_event(stream, "completed")
            recovered_in = time.monotonic() - killed
            await asyncio.sleep(settings.recovery_s)  # room for a second, wrong, completion
            kinds = [e.kind for e in await queue.events_since("0-0", "job-k")]
        view = await queue.get("job-k")
        await events.close()
        await queue.close()
        (survivor,) = set(pids) - {victim}
        assert completed.result is not None
        assert completed.result.worker.endswith(f":{survivor}")
        assert completed.result == result_for("job-k", payload, completed.result.worker)
        assert view is not None and view.state == "completed" and view.result == completed.result
        assert view.attempts_started == 2 and view.stalls == 1
        return kinds, recovered_in, victim

    kinds, recovered_in, victim = run(scenario, timeout=30)
    assert kinds.count("completed") == 1 and kinds.count("stalled") == 1
    assert "failed" not in kinds
    assert len(workers.holders("job-k")) == 2 and victim in workers.holders("job-k")
    # Recovery: lock expiry + a stalled check (1.5 s here), then the survivor's 2 s run.
    assert recovered_in < settings.recovery_s + 2.0 + 3.0


def test_a_job_that_kills_two_workers_fails_with_a_clear_error(
    settings: QueueSettings, workers: Workers
) -> None:
    calls: list[str] = []

    async def must_not_run(context: JobContext) -> TryOnResult:
        calls.append(context.job_id)
        raise AssertionError("a job past its stall limit was run")

    async def scenario() -> None:
        queue, events = TryOnQueue(settings), TryOnEvents(settings)
        await events.start()
        pids = workers.start(2)
        with events.subscribe("job-poison") as stream:
            await queue.enqueue("job-poison", sample_job(seed=POISON_SEED))
            while any(p.poll() is None for p in workers.processes):  # both die on it
                await asyncio.sleep(0.1)
            # A third worker (this process) takes it and fails it instead of running it.
            third = TryOnConsumer(settings, must_not_run, concurrency=1)
            await third.start()
            failed = await next_event(stream, "failed")
            await third.stop()
        view = await queue.get("job-poison")
        await events.close()
        await queue.close()
        assert sorted(workers.holders("job-poison")) == sorted(pids)
        assert failed.failure is not None and failed.failure.code == "worker_lost"
        assert "died or stalled twice" in failed.failure.message
        assert view is not None and view.state == "failed" and view.failure == failed.failure

    run(scenario, timeout=40)
    assert calls == []


def test_sigterm_finishes_the_running_job_then_exits(
    settings: QueueSettings, workers: Workers
) -> None:
    (pid,) = workers.start(1)
    payload = sample_job(steps=8)  # 8 x 0.2 s

    async def scenario() -> None:
        queue, events = TryOnQueue(settings), TryOnEvents(settings)
        await events.start()
        with events.subscribe("job-t") as stream:
            await queue.enqueue("job-t", payload)
            await next_event(stream, "progress")
            os.kill(pid, signal.SIGTERM)
            completed = await next_event(stream, "completed")
        await queue.enqueue("job-after", sample_job())  # nobody takes it now
        await asyncio.sleep(0.5)
        after = await queue.get("job-after")
        await events.close()
        await queue.close()
        assert completed.result == result_for("job-t", payload, completed.result.worker)
        assert after is not None and after.state == "waiting"

    run(scenario, timeout=20)
    assert workers.processes[0].wait(timeout=10) == 0
    assert workers.holders("job-t") == [pid]
