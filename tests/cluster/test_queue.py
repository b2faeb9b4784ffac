"""The adapter against a real Redis, producer and consumer in one event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest

pytest.importorskip(
    "bullmq", reason="the `cluster` extra is not installed: pip install -e .[cluster]"
)
import redis.asyncio as aioredis
from bullmq import Queue

from tests.cluster.conftest import RedisServer, fast_settings, start_redis
from tests.cluster.jobs import result_for, sample_job
from vton.cluster.messages import PayloadError, TryOnProgress, TryOnResult
from vton.cluster.queue import (
    JOB_NAME,
    Enqueued,
    JobContext,
    QueueEvent,
    QueueSettings,
    QueueUnavailable,
    TryOnConsumer,
    TryOnEvents,
    TryOnQueue,
    prefetch_concurrency,
)

T = TypeVar("T")


def run(scenario: Callable[[], Awaitable[T]], timeout: float = 20.0) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await scenario()

    return asyncio.run(bounded())


async def next_event(events: asyncio.Queue[QueueEvent], kind: str) -> QueueEvent:
    while True:
        event = await events.get()
        if event.kind == kind:
            return event


async def wait_for_state(queue: TryOnQueue, job_id: str, state: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (view := await queue.get(job_id)) is None or view.state != state:
        assert time.monotonic() < deadline, f"{job_id} still {view and view.state}, not {state}"
        await asyncio.sleep(0.05)


def stepping_handler(
    calls: list[str], step_s: float = 0.02
) -> Callable[[JobContext], Awaitable[TryOnResult]]:
    """Runs the payload's steps, reporting each and stopping on a cancel request."""

    async def handle(context: JobContext) -> TryOnResult:
        calls.append(context.job_id)
        steps = context.payload.options.steps
        for step in range(1, steps + 1):
            await asyncio.sleep(step_s)
            context.raise_if_cancelled()
            await context.report(TryOnProgress(step=step, total_steps=steps))
        return result_for(context.job_id, context.payload, "in-process")

    return handle


def test_round_trip_with_progress_events(settings: QueueSettings) -> None:
    payload = sample_job(garments=3, steps=3)
    calls: list[str] = []

    async def scenario() -> None:
        queue, events = TryOnQueue(settings), TryOnEvents(settings)
        await events.start()
        consumer = TryOnConsumer(settings, stepping_handler(calls), concurrency=2)
        with events.subscribe("job-1") as stream:
            assert await queue.enqueue("job-1", payload) == Enqueued("job-1", created=True)
            await consumer.start()
            completed = await next_event(stream, "completed")
        seen = []
        for kind in ("added", "active", "progress", "completed"):
            seen += [e.kind for e in await queue.events_since("0-0", "job-1") if e.kind == kind]
        view = await queue.get("job-1")
        await consumer.stop()
        await events.close()
        await queue.close()

        assert completed.result == result_for("job-1", payload, "in-process")
        assert seen == ["added", "active", "progress", "progress", "progress", "completed"]
        assert view is not None and view.state == "completed"
        assert view.payload == payload and view.result == completed.result
        assert view.progress == TryOnProgress(step=3, total_steps=3)
        assert view.attempts_started == 1 and view.failure is None

    run(scenario)
    assert calls == ["job-1"]


def test_progress_events_reach_a_listener_in_order(settings: QueueSettings) -> None:
    async def scenario() -> list[TryOnProgress | None]:
        queue, events = TryOnQueue(settings), TryOnEvents(settings)
        await events.start()
        consumer = TryOnConsumer(settings, stepping_handler([]), concurrency=1)
        await consumer.start()
        with events.subscribe() as stream:  # every job
            await queue.enqueue("job-p", sample_job(steps=5))
            progress = [(await next_event(stream, "progress")).progress for _ in range(5)]
            await next_event(stream, "completed")
        await consumer.stop()
        await events.close()
        await queue.close()
        return progress

    progress = run(scenario)
    assert progress == [TryOnProgress(step=s, total_steps=5) for s in range(1, 6)]


def test_duplicate_id_is_a_no_op(settings: QueueSettings) -> None:
    first, second = sample_job(seed=1), sample_job(seed=2)
    calls: list[str] = []

    async def scenario() -> None:
        queue = TryOnQueue(settings)
        assert (await queue.enqueue("job-d", first)).created
        assert not (await queue.enqueue("job-d", second)).created  # while waiting
        consumer = TryOnConsumer(settings, stepping_handler(calls), concurrency=1)
        await consumer.start()
        await wait_for_state(queue, "job-d", "completed")
        assert not (await queue.enqueue("job-d", second)).created  # once completed
        racing = [queue.enqueue("job-race", sample_job(seed=s)) for s in range(6)]
        assert sum(e.created for e in await asyncio.gather(*racing)) == 1
        await wait_for_state(queue, "job-race", "completed")
        await asyncio.sleep(0.3)
        view = await queue.get("job-d")
        depth = await queue.depth()
        await consumer.stop()
        await queue.close()
        assert view is not None and view.payload == first  # the first job's data is kept
        assert depth == {"waiting": 0, "active": 0}

    run(scenario)
    assert calls == ["job-d", "job-race"]


def test_cancel_a_waiting_job(settings: QueueSettings) -> None:
    calls: list[str] = []

    async def scenario() -> None:
        queue = TryOnQueue(settings)
        await queue.enqueue("job-c", sample_job())
        assert await queue.cancel("job-c") == "removed"
        view = await queue.get("job-c")
        assert view is not None and view.state == "cancelled"
        assert view.failure is not None and view.failure.code == "cancelled"
        assert not (await queue.enqueue("job-c", sample_job())).created  # stays cancelled
        assert await queue.cancel("nope") == "unknown"
        consumer = TryOnConsumer(settings, stepping_handler(calls), concurrency=1)
        await consumer.start()
        await asyncio.sleep(0.5)
        await consumer.stop()
        await queue.close()

    run(scenario)
    assert calls == []


def test_cancel_a_running_job_stops_it_between_steps(settings: QueueSettings) -> None:
    calls: list[str] = []

    async def scenario() -> None:
        queue, events = TryOnQueue(settings), TryOnEvents(settings)
        await events.start()
        consumer = TryOnConsumer(settings, stepping_handler(calls, step_s=0.05), concurrency=1)
        await consumer.start()
        with events.subscribe("job-r") as stream:
            await queue.enqueue("job-r", sample_job(steps=100))
            await next_event(stream, "progress")
            started = time.monotonic()
            assert await queue.cancel("job-r") == "requested"
            failed = await next_event(stream, "failed")
        stopped_in = time.monotonic() - started
        view = await queue.get("job-r")
        assert await queue.cancel("job-r") == "finished"
        await consumer.stop()
        await events.close()
        await queue.close()
        assert failed.failure is not None and failed.failure.code == "cancelled"
        assert view is not None and view.state == "cancelled"
        assert view.progress is not None and view.progress.step < 100
        assert stopped_in < 1.0  # a poll (0.05 s) and a step (0.05 s), with slack

    run(scenario)
    assert calls == ["job-r"]


@pytest.mark.parametrize(
    ("name", "data", "code", "says"),
    [
        (JOB_NAME, {"v": 1, "kind": "single"}, "bad_payload", "userId: Field required"),
        (JOB_NAME, {**sample_job().dump(), "v": 7}, "unsupported_version", "v=7"),
        (JOB_NAME, {**sample_job().dump(), "userId": "../etc"}, "bad_payload", "userId"),
        (JOB_NAME, ["not", "an", "object"], "bad_payload", "expected a JSON object"),
        ("resize", sample_job().dump(), "bad_payload", "job name 'resize'"),
    ],
)
def test_a_malformed_job_fails_with_a_clear_error(
    settings: QueueSettings, name: str, data: object, code: str, says: str
) -> None:
    calls: list[str] = []

    async def scenario() -> None:
        queue = TryOnQueue(settings)
        raw = Queue(settings.name, {"connection": settings.url, "prefix": settings.prefix})
        await raw.add(name, data, {"jobId": "job-bad"})
        await raw.add(JOB_NAME, sample_job().dump(), {"jobId": "job-good"})
        consumer = TryOnConsumer(settings, stepping_handler(calls), concurrency=1)
        await consumer.start()
        await wait_for_state(queue, "job-bad", "failed")
        await wait_for_state(queue, "job-good", "completed")  # the worker carried on
        view = await queue.get("job-bad")
        await consumer.stop()
        await raw.close()
        await queue.close()
        assert view is not None and view.failure is not None
        assert view.failure.code == code and says in view.failure.message, view.failure

    run(scenario)
    assert calls == ["job-good"]


def test_reading_a_job_whose_stored_data_is_not_json_is_a_payload_error(
    settings: QueueSettings,
) -> None:
    """Only a writer that bypasses BullMQ can store such a job (no worker should take it:
    bullmq-python cannot build it, and it cycles through stalls instead of failing)."""

    async def scenario() -> None:
        queue = TryOnQueue(settings)
        await queue.enqueue("job-raw", sample_job())
        client = aioredis.from_url(settings.url)
        await client.hset(f"{settings.keys['']}job-raw", "data", "not json{")
        await client.aclose()
        with pytest.raises(PayloadError, match="job job-raw: stored fields are not JSON"):
            await queue.get("job-raw")
        await queue.close()

    run(scenario)


def test_a_passed_deadline_fails_the_job_without_running_it(settings: QueueSettings) -> None:
    calls: list[str] = []
    past = datetime.now(UTC) - timedelta(seconds=10)

    async def scenario() -> None:
        queue = TryOnQueue(settings)
        await queue.enqueue(
            "job-late", sample_job(requested_at=past, deadline=past + timedelta(seconds=1))
        )
        consumer = TryOnConsumer(settings, stepping_handler(calls), concurrency=1)
        await consumer.start()
        await wait_for_state(queue, "job-late", "failed")
        view = await queue.get("job-late")
        await consumer.stop()
        await queue.close()
        assert view is not None and view.failure is not None
        assert view.failure.code == "deadline_exceeded"

    run(scenario)
    assert calls == []


def test_a_handler_exception_fails_the_job_as_internal(settings: QueueSettings) -> None:
    async def explode(context: JobContext) -> TryOnResult:
        raise RuntimeError("out of memory")

    async def scenario() -> None:
        queue = TryOnQueue(settings)
        await queue.enqueue("job-x", sample_job())
        consumer = TryOnConsumer(settings, explode, concurrency=1)
        await consumer.start()
        await wait_for_state(queue, "job-x", "failed")
        view = await queue.get("job-x")
        await consumer.stop()
        await queue.close()
        assert view is not None and view.failure is not None
        assert view.failure.reason() == "internal: RuntimeError: out of memory"

    run(scenario)


def test_redis_down_is_queue_unavailable_within_the_call_timeout(tmp_path: Path) -> None:
    server: RedisServer = start_redis(tmp_path)
    settings = QueueSettings(url=server.url, name="down", call_timeout_s=1.0)
    server.stop()

    async def scenario() -> float:
        queue = TryOnQueue(settings)
        started = time.monotonic()
        with pytest.raises(QueueUnavailable, match="enqueue job-1: Redis at"):
            await queue.enqueue("job-1", sample_job())
        elapsed = time.monotonic() - started
        await queue.close()
        return elapsed

    assert run(scenario) < 2.0


def test_prefetch_is_two_full_batches_per_gpu() -> None:
    assert prefetch_concurrency(batch_size=8, gpus=2) == 32
    with pytest.raises(ValueError):
        prefetch_concurrency(batch_size=0, gpus=1)


def test_a_worker_holds_up_to_its_concurrency_across_jobs(settings: QueueSettings) -> None:
    """The prefetch: with concurrency 4, four jobs run in one worker at once, never five."""
    running: set[str] = set()
    peak = 0

    async def hold(context: JobContext) -> TryOnResult:
        nonlocal peak
        running.add(context.job_id)
        peak = max(peak, len(running))
        await asyncio.sleep(0.3)
        running.discard(context.job_id)
        return result_for(context.job_id, context.payload, "in-process")

    async def scenario() -> None:
        queue = TryOnQueue(settings)
        for i in range(8):
            await queue.enqueue(f"job-{i}", sample_job())
        consumer = TryOnConsumer(settings, hold, concurrency=4)
        await consumer.start()
        for i in range(8):
            await wait_for_state(queue, f"job-{i}", "completed")
        await consumer.stop()
        await queue.close()

    run(scenario)
    assert peak == 4


def test_worker_and_events_carry_on_after_a_redis_restart(tmp_path: Path) -> None:
    server = start_redis(tmp_path)
    settings = fast_settings(server.url)
    calls: list[str] = []

    async def scenario() -> None:
        nonlocal server
        queue, events = TryOnQueue(settings), TryOnEvents(settings, retry_s=0.2)
        await events.start()
        consumer = TryOnConsumer(settings, stepping_handler(calls), concurrency=1)
        await consumer.start()
        with events.subscribe() as stream:
            await queue.enqueue("before", sample_job())
            await next_event(stream, "completed")
            server.stop()
            with pytest.raises(QueueUnavailable):
                await queue.enqueue("during", sample_job())
            server = start_redis(tmp_path, port=server.port)  # empty: no persistence in tests
            assert (await queue.enqueue("after", sample_job())).created
            assert (await next_event(stream, "completed")).job_id == "after"
        await consumer.stop()
        await events.close()
        await queue.close()

    try:
        run(scenario)
    finally:
        server.stop()
    assert calls == ["before", "after"]
