"""Overload and failure through the real server: a full queue answers 429 with Retry-After,
cancellation works queued and running, an injected CUDA out-of-memory splits the batch."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.api.live import (
    WAIT_S,
    FaultyPipeline,
    LiveServer,
    new_user,
    register_garment,
    register_person,
)
from tests.api.test_jobs import wait_job

Faulty = tuple[LiveServer, FaultyPipeline]


@pytest.fixture
def client(faulty_server: Faulty) -> Iterator[httpx.Client]:
    server, faulty = faulty_server
    with server.client(new_user()) as client:
        register_person(client)
        for clothing_id in ("a", "b", "c", "d"):
            register_garment(client, clothing_id)
        yield client
    faulty.gate.set()
    faulty.oom_above = None


def submit(client: httpx.Client, seed: int, **body: object) -> httpx.Response:
    return client.post(
        "/api/jobs",
        json={"type": "single", "clothingId": "a", "denoiseSteps": 2, "seed": seed, **body},
    )


def hold_worker(client: httpx.Client, faulty: FaultyPipeline) -> str:
    """Closes the gate and submits a job that the worker takes and holds; returns its id."""
    faulty.gate.clear()
    job = submit(client, seed=1000).json()["jobId"]
    assert faulty.blocked.wait(WAIT_S)
    return job


def test_a_full_queue_answers_429_with_retry_after(
    faulty_server: Faulty, client: httpx.Client
) -> None:
    _, faulty = faulty_server
    running = hold_worker(client, faulty)
    queued = [submit(client, seed=i) for i in range(4)]  # VTON_MAX_QUEUE is 4
    assert all(r.status_code == 202 for r in queued), [r.text for r in queued]
    full = submit(client, seed=99)
    assert full.status_code == 429, full.text
    assert int(full.headers["retry-after"]) >= 1
    assert full.json()["error"] == "QueueFull"
    sync = client.post("/api/fitting/single-item-tryon-v2", json={"clothingId": "b", "seed": 98})
    assert sync.status_code == 429

    faulty.gate.set()
    for job in [running, *(r.json()["jobId"] for r in queued)]:
        assert wait_job(client, job)["state"] == "succeeded"
    assert submit(client, seed=97).status_code == 202


def test_cancel_a_queued_and_a_running_job(faulty_server: Faulty, client: httpx.Client) -> None:
    _, faulty = faulty_server
    running = hold_worker(client, faulty)
    queued = submit(client, seed=1).json()["jobId"]
    other = submit(client, seed=2).json()["jobId"]

    cancelled = client.delete(f"/api/jobs/{queued}")
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"
    assert client.delete(f"/api/jobs/{running}").json()["state"] == "cancelled"
    faulty.gate.set()

    assert wait_job(client, other)["state"] == "succeeded"
    for job in (queued, running):
        status = wait_job(client, job)
        assert status["state"] == "cancelled"
        assert "JobCancelled" in status["results"][0]["error"]


def test_injected_oom_splits_the_batch_and_every_item_succeeds(
    faulty_server: Faulty, client: httpx.Client
) -> None:
    server, faulty = faulty_server
    splits_before = server.metric("vton_batch_splits_total")
    faulty.oom_above = 1
    faulty.batch_sizes.clear()
    response = client.post(
        "/api/fitting/batch-tryon", json={"clothingIds": ["a", "b", "c", "d"], "denoiseSteps": 2}
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["success"] for r in results] == [True] * 4, results
    assert faulty.batch_sizes[0] == 4 and faulty.batch_sizes.count(1) == 4
    assert server.metric("vton_batch_splits_total") >= splits_before + 3
