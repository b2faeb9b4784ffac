"""Overload and failure through the real server: a full queue answers 429 with Retry-After,
cancellation works queued and running, an injected CUDA out-of-memory splits the batch, a
non-finite image is retried in the fallback precision or fails clearly, a deadline answers 504."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.live import (
    WAIT_S,
    FaultyPipeline,
    FaultyServer,
    make_settings,
    new_user,
    register_garment,
    register_person,
    start_faulty_server,
    wait_job,
)


def registered_client(faulty: FaultyServer) -> httpx.Client:
    client = faulty.server.client(new_user())
    register_person(client)
    for clothing_id in ("a", "b", "c", "d"):
        register_garment(client, clothing_id)
    return client


@pytest.fixture
def client(faulty_server: FaultyServer) -> Iterator[httpx.Client]:
    client = registered_client(faulty_server)
    yield client
    client.close()
    faulty_server.main.reset()
    faulty_server.fallback.reset()


def submit(client: httpx.Client, seed: int, **body: object) -> httpx.Response:
    job = {"type": "single", "clothingId": "a", "denoiseSteps": 2, "seed": seed, **body}
    return client.post("/api/jobs", json=job)


def hold_worker(client: httpx.Client, faulty: FaultyPipeline) -> str:
    """Closes the gate and submits a job that the worker takes and holds; returns its id."""
    faulty.gate.clear()
    job = submit(client, seed=1000).json()["jobId"]
    assert faulty.blocked.wait(WAIT_S)
    return job


def test_a_full_queue_answers_429_with_retry_after(
    faulty_server: FaultyServer, client: httpx.Client
) -> None:
    running = hold_worker(client, faulty_server.main)
    queued = [submit(client, seed=i) for i in range(4)]  # VTON_MAX_QUEUE is 4
    assert all(r.status_code == 202 for r in queued), [r.text for r in queued]
    full = submit(client, seed=99)
    assert full.status_code == 429, full.text
    assert int(full.headers["retry-after"]) >= 1
    assert full.json()["error"] == "QueueFull"
    sync = client.post("/api/fitting/single-item-tryon-v2", json={"clothingId": "b", "seed": 98})
    assert sync.status_code == 429

    faulty_server.main.gate.set()
    for job in [running, *(r.json()["jobId"] for r in queued)]:
        assert wait_job(client, job)["state"] == "succeeded"
    assert submit(client, seed=97).status_code == 202


def test_cancel_a_queued_and_a_running_job(
    faulty_server: FaultyServer, client: httpx.Client
) -> None:
    running = hold_worker(client, faulty_server.main)
    queued = submit(client, seed=1).json()["jobId"]
    other = submit(client, seed=2).json()["jobId"]

    cancelled = client.delete(f"/api/jobs/{queued}")
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"
    assert client.delete(f"/api/jobs/{running}").json()["state"] == "cancelled"
    faulty_server.main.gate.set()

    assert wait_job(client, other)["state"] == "succeeded"
    for job in (queued, running):
        status = wait_job(client, job)
        assert status["state"] == "cancelled"
        assert "JobCancelled" in status["results"][0]["error"]


def test_injected_oom_splits_the_batch_and_every_item_succeeds(
    faulty_server: FaultyServer, client: httpx.Client
) -> None:
    server, main = faulty_server.server, faulty_server.main
    splits_before = server.metric("vton_batch_splits_total", missing_ok=True)
    main.oom_above = 1
    response = client.post(
        "/api/fitting/batch-tryon", json={"clothingIds": ["a", "b", "c", "d"], "denoiseSteps": 2}
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["success"] for r in results] == [True] * 4, results
    assert main.batch_sizes[0] == 4 and main.batch_sizes.count(1) == 4
    assert server.metric("vton_batch_splits_total") >= splits_before + 3


def test_a_non_finite_image_is_retried_in_the_fallback(
    faulty_server: FaultyServer, client: httpx.Client
) -> None:
    faulty_server.main.nan = True
    body = {"clothingId": "a", "denoiseSteps": 2, "seed": 4242}
    response = client.post("/api/fitting/single-item-tryon-v2", json=body)
    assert response.status_code == 200, response.text
    assert faulty_server.fallback.batch_sizes == [1]


def test_a_non_finite_image_twice_fails_clearly(
    faulty_server: FaultyServer, client: httpx.Client
) -> None:
    faulty_server.main.nan = faulty_server.fallback.nan = True
    body = {"clothingId": "a", "denoiseSteps": 2, "seed": 4343}
    response = client.post("/api/fitting/single-item-tryon-v2", json=body)
    assert response.status_code == 500
    assert response.json()["error"] == "NonFiniteOutput"
    assert "non-finite or all black" in response.json()["detail"]


def test_past_the_deadline_a_request_answers_504(tiny_model_dir: Path, tmp_path: Path) -> None:
    settings = make_settings(
        tiny_model_dir, tmp_path, request_timeout_s=1, fallback_dtype="float32", warmup=False
    )
    faulty = start_faulty_server(settings)
    try:
        client = registered_client(faulty)
        faulty.main.gate.clear()
        body = {"clothingId": "a", "denoiseSteps": 2}
        response = client.post("/api/fitting/single-item-tryon-v2", json=body)
        client.close()
        assert response.status_code == 504
        assert response.json() == {
            "error": "JobTimeout",
            "detail": "no result within the 1 s deadline",
        }
    finally:
        faulty.main.gate.set()
        faulty.server.stop()
