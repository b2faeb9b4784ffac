"""Async jobs: 202, polling, server-sent events, batch jobs and inline jobs."""

from __future__ import annotations

import json
import time

import httpx

from tests.api.live import (
    WAIT_S,
    LiveServer,
    garment_image,
    person_images,
    png_bytes,
    register_garment,
)


def wait_job(client: httpx.Client, job_id: str) -> dict:
    deadline = time.monotonic() + WAIT_S
    while True:
        status = client.get(f"/api/jobs/{job_id}").json()
        if status["state"] in ("succeeded", "failed", "cancelled"):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.05)


def read_events(client: httpx.Client, job_id: str) -> list[tuple[str, dict]]:
    events = []
    with client.stream("GET", f"/api/jobs/{job_id}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
    return events


def test_single_job_polled_to_success(user: tuple[httpx.Client, str]) -> None:
    client, _ = user
    response = client.post(
        "/api/jobs", json={"type": "single", "clothingId": "shirt", "denoiseSteps": 3, "seed": 7}
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["statusUrl"] == f"/api/jobs/{accepted['jobId']}"
    status = wait_job(client, accepted["jobId"])
    assert status["state"] == "succeeded" and status["type"] == "single"
    assert status["step"] == status["totalSteps"] == 3
    (item,) = status["results"]
    assert item["success"] and item["image"] and item["clothingId"] == "shirt"


def test_events_stream_progress_items_and_the_end(user: tuple[httpx.Client, str]) -> None:
    client, _ = user
    register_garment(client, "jacket")
    job = client.post(
        "/api/jobs",
        json={"type": "batch", "clothingIds": ["shirt", "jacket", "nope"], "denoiseSteps": 3},
    ).json()["jobId"]
    events = read_events(client, job)
    names = [name for name, _ in events]
    assert names[-1] == "finished" and events[-1][1]["state"] == "succeeded"
    progress = [data for name, data in events if name == "progress"]
    assert progress and progress[-1] == {"step": 6, "totalSteps": 6}
    assert [p["step"] for p in progress] == sorted(p["step"] for p in progress)
    items = {data["clothingId"]: data for name, data in events if name == "item"}
    assert items["shirt"]["success"] and items["shirt"]["image"]
    assert items["jacket"]["success"]
    assert not items["nope"]["success"] and "NotRegistered" in items["nope"]["error"]
    # a late subscriber gets the whole story again
    assert [name for name, _ in read_events(client, job)] == names


def test_inline_job(server: LiveServer) -> None:
    files = {n: (f"{n}.png", png_bytes(i), "image/png") for n, i in person_images().items()}
    files["garment"] = ("garment.png", png_bytes(garment_image()), "image/png")
    with server.client("inline-jobs") as client:
        response = client.post(
            "/api/jobs/inline", files=files, data={"description": "a top", "denoiseSteps": 2}
        )
        assert response.status_code == 202, response.text
        status = wait_job(client, response.json()["jobId"])
        assert status["type"] == "inline" and status["results"][0]["success"]


def test_unknown_job_is_404(user: tuple[httpx.Client, str]) -> None:
    client, _ = user
    assert client.get("/api/jobs/unknown").status_code == 404
    assert client.delete("/api/jobs/unknown").status_code == 404
