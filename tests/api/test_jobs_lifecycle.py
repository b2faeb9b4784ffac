"""Jobs through the real server: their own deadline, an `item` event for every item however it
ended, the caller's job list, Idempotency-Key, event ids with Last-Event-ID resume, keep-alive
comments. One server whose engine can be held (FaultyPipeline), with a 1 s synchronous timeout:
jobs must not share it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.live import (
    WAIT_S,
    FaultyServer,
    make_settings,
    new_user,
    register_garment,
    register_person,
    start_faulty_server,
    wait_job,
)

PING_S = 0.3


@pytest.fixture(scope="module")
def faulty(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FaultyServer]:
    settings = make_settings(
        tiny_model_dir,
        tmp_path_factory.mktemp("jobs-lifecycle"),
        request_timeout_s=1,
        job_timeout_s=30,
        sse_ping_s=PING_S,
        batch_window_ms=0,
        fallback_dtype="float32",
        warmup=False,
    )
    server = start_faulty_server(settings)
    yield server
    server.main.reset()
    server.server.stop()


@pytest.fixture
def client(faulty: FaultyServer) -> Iterator[httpx.Client]:
    client = faulty.server.client(new_user())
    register_person(client)
    for clothing_id in ("a", "b", "c"):
        register_garment(client, clothing_id)
    yield client
    faulty.main.reset()
    client.close()


def batch(client: httpx.Client, seed: int, headers: dict[str, str] | None = None, **extra: object):
    body = {"type": "batch", "clothingIds": ["a", "b", "c"], "denoiseSteps": 2, "seed": seed}
    return client.post("/api/jobs", json=body | extra, headers=headers or {})


def read_events(
    client: httpx.Client, job_id: str, last_event_id: str | None = None
) -> list[tuple[str, str, dict]]:
    """(id, event, data) of every event until the stream ends."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    events = []
    event_id = name = ""
    with client.stream("GET", f"/api/jobs/{job_id}/events", headers=headers) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("id: "):
                event_id = line.removeprefix("id: ")
            elif line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((event_id, name, json.loads(line.removeprefix("data: "))))
    return events


def test_a_job_outlives_the_synchronous_timeout(faulty: FaultyServer, client: httpx.Client) -> None:
    faulty.main.gate.clear()
    job = batch(client, seed=1).json()
    assert faulty.main.blocked.wait(WAIT_S)
    time.sleep(1.5)  # past VTON_REQUEST_TIMEOUT_S (1 s)
    faulty.main.gate.set()
    status = wait_job(client, job["jobId"])
    assert status["state"] == "succeeded", status
    assert status["deadlineAt"] == pytest.approx(status["createdAt"] + 30)


def test_items_ended_by_the_deadline_each_get_an_item_event(
    faulty: FaultyServer, client: httpx.Client
) -> None:
    faulty.main.gate.clear()
    job = batch(client, seed=2, deadlineSeconds=1.0).json()
    events = read_events(client, job["jobId"])
    faulty.main.gate.set()
    items = {data["clothingId"]: data for _, name, data in events if name == "item"}
    assert sorted(items) == ["a", "b", "c"]
    for item in items.values():
        assert item["state"] == "failed" and "JobTimeout" in item["error"], item
    assert events[-1][1] == "finished" and events[-1][2]["state"] == "failed"
    assert events[-1][2]["deadlineAt"] == pytest.approx(events[-1][2]["createdAt"] + 1.0)


def test_cancelled_items_each_get_an_item_event(faulty: FaultyServer, client: httpx.Client) -> None:
    faulty.main.gate.clear()
    job = batch(client, seed=3).json()["jobId"]
    assert faulty.main.blocked.wait(WAIT_S)
    assert client.delete(f"/api/jobs/{job}").json()["state"] == "cancelled"
    faulty.main.gate.set()
    events = read_events(client, job)
    states = [data["state"] for _, name, data in events if name == "item"]
    assert states == ["cancelled"] * 3


def test_a_deadline_past_the_job_timeout_is_refused(client: httpx.Client) -> None:
    response = batch(client, seed=4, deadlineSeconds=31.0)
    assert response.status_code == 422
    assert response.json()["error"] == "InvalidInput"
    assert "deadlineSeconds" in response.json()["detail"]


def test_the_job_list_is_the_callers_newest_first_without_images(
    faulty: FaultyServer, client: httpx.Client
) -> None:
    first = batch(client, seed=5).json()["jobId"]
    second = client.post(
        "/api/jobs", json={"type": "single", "clothingId": "a", "denoiseSteps": 2, "seed": 6}
    ).json()["jobId"]
    wait_job(client, first), wait_job(client, second)
    listed = client.get("/api/jobs").json()["jobs"]
    assert [job["jobId"] for job in listed] == [second, first]
    assert all(item["image"] is None and item["imageUrl"] for j in listed for item in j["results"])
    assert [j["jobId"] for j in client.get("/api/jobs", params={"limit": 1}).json()["jobs"]] == [
        second
    ]
    with faulty.server.client(new_user()) as stranger:
        assert stranger.get("/api/jobs").json() == {"jobs": []}
    assert client.get("/api/jobs", params={"limit": 0}).status_code == 422


def test_an_idempotency_key_answers_the_first_job_and_refuses_another_body(
    faulty: FaultyServer, client: httpx.Client
) -> None:
    key = {"Idempotency-Key": "order-7f3a"}
    first = batch(client, seed=7, headers=key)
    again = batch(client, seed=7, headers=key)
    assert first.status_code == again.status_code == 202
    assert again.json()["jobId"] == first.json()["jobId"]
    other = batch(client, seed=8, headers=key)
    assert other.status_code == 409
    assert other.json()["error"] == "IdempotencyConflict" and "order-7f3a" in other.json()["detail"]
    assert batch(client, seed=7).json()["jobId"] != first.json()["jobId"]  # no key: a new job
    with faulty.server.client(new_user()) as stranger:  # keys are per user
        register_person(stranger)
        for clothing_id in ("a", "b", "c"):
            register_garment(stranger, clothing_id)
        assert batch(stranger, seed=7, headers=key).json()["jobId"] != first.json()["jobId"]
    bad = batch(client, seed=7, headers={"Idempotency-Key": "has space"})
    assert bad.status_code == 422 and "Idempotency-Key" in bad.json()["detail"]
    wait_job(client, first.json()["jobId"])


def untimed(event: tuple[str, str, dict]) -> tuple[str, str, dict]:
    """The event without its timings (an item's total is measured when it is sent)."""
    event_id, name, data = event
    return event_id, name, {k: v for k, v in data.items() if k != "timings"}


def test_events_have_ids_and_resume_after_last_event_id(client: httpx.Client) -> None:
    job = batch(client, seed=9).json()["jobId"]
    events = read_events(client, job)
    ids = [event_id for event_id, _, _ in events]
    assert ids == [str(i) for i in range(len(events))]
    kinds = [name for _, name, _ in events]
    assert kinds.count("item") == 3 and kinds[-1] == "finished"
    resumed = read_events(client, job, last_event_id=ids[2])
    assert [untimed(event) for event in resumed] == [untimed(event) for event in events[3:]]
    assert read_events(client, job, last_event_id=ids[-1]) == []
    bad = client.get(f"/api/jobs/{job}/events", headers={"Last-Event-ID": "x"})
    assert bad.status_code == 422


def test_an_idle_stream_carries_keep_alive_comments(
    faulty: FaultyServer, client: httpx.Client
) -> None:
    faulty.main.gate.clear()
    job = batch(client, seed=10).json()["jobId"]
    assert faulty.main.blocked.wait(WAIT_S)
    comments = []
    with client.stream("GET", f"/api/jobs/{job}/events") as response:
        started = time.monotonic()
        for line in response.iter_lines():
            if line.startswith(":"):
                comments.append(line)
                if len(comments) == 2:
                    break
        waited = time.monotonic() - started
    faulty.main.gate.set()
    assert len(comments) == 2 and waited >= PING_S
    wait_job(client, job)
