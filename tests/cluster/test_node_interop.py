"""A Node bullmq producer (what a NestJS service runs) enqueues a try-on; the Python consumer
completes it; the producer reads progress and result with QueueEvents and Job.fromId."""

from __future__ import annotations

import asyncio
import json

import pytest

pytest.importorskip(
    "bullmq", reason="the `cluster` extra is not installed: pip install -e .[cluster]"
)

from tests.cluster.conftest import NODE_DIR
from tests.cluster.jobs import result_for, sample_job
from tests.cluster.test_queue import run, stepping_handler
from vton.cluster.queue import QueueSettings, TryOnConsumer


def test_a_node_producers_job_completes_and_its_result_is_readable(
    settings: QueueSettings, node: str
) -> None:
    payload = sample_job(garments=2, steps=3)
    calls: list[str] = []

    async def scenario() -> dict[str, object]:
        consumer = TryOnConsumer(settings, stepping_handler(calls), concurrency=2)
        await consumer.start()
        producer = await asyncio.create_subprocess_exec(
            node, str(NODE_DIR / "produce.mjs"), settings.url, settings.name, settings.prefix,
            "job-node", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await producer.communicate(json.dumps(payload.dump()).encode())
        await consumer.stop()
        assert producer.returncode == 0, out
        return json.loads(out.decode().strip().splitlines()[-1])

    seen = run(scenario, timeout=30)
    expected = result_for("job-node", payload, "in-process").dump()
    assert calls == ["job-node"]
    assert seen["failedReason"] is None
    assert seen["returnvalue"] == expected
    assert seen["stored"] == {
        "state": "completed",
        "returnvalue": expected,
        "progress": {"v": 1, "step": 3, "totalSteps": 3, "itemsFinished": 0},
        "attemptsStarted": 1,
    }
    assert seen["progressEvents"] == [
        {"v": 1, "step": s, "totalSteps": 3, "itemsFinished": 0} for s in (1, 2, 3)
    ]
