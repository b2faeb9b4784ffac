"""Async jobs: 202, polling, server-sent events, batch jobs and inline jobs."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import httpx
import pytest

from tests.api.live import (
    LiveServer,
    garment_image,
    make_settings,
    person_images,
    png_bytes,
    register_garment,
    wait_for_line,
    wait_job,
)
from vton.errors import NotRegistered


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
    shirt = items["shirt"]
    assert shirt["success"] and shirt["imageUrl"] and shirt["image"] is None  # URLs, not images
    assert items["jacket"]["success"]
    assert not items["nope"]["success"] and "NotRegistered" in items["nope"]["error"]
    # a late subscriber gets the whole story again
    assert [name for name, _ in read_events(client, job)] == names


INLINE_FORM = {"description": "a top", "denoiseSteps": 2}


def inline_files() -> dict[str, tuple[str, bytes, str]]:
    files = {n: (f"{n}.png", png_bytes(i), "image/png") for n, i in person_images().items()}
    files["garment"] = ("garment.png", png_bytes(garment_image()), "image/png")
    return files


def test_inline_job(server: LiveServer) -> None:
    with server.client("inline-jobs") as client:
        response = client.post("/api/jobs/inline", files=inline_files(), data=INLINE_FORM)
        assert response.status_code == 202, response.text
        status = wait_job(client, response.json()["jobId"])
        assert status["type"] == "inline" and status["results"][0]["success"]


def test_unknown_job_is_404(user: tuple[httpx.Client, str]) -> None:
    client, _ = user
    assert client.get("/api/jobs/unknown").status_code == 404
    assert client.delete("/api/jobs/unknown").status_code == 404


def test_get_and_delete_agree_on_a_finished_job(user: tuple[httpx.Client, str]) -> None:
    client, _ = user
    body = {"type": "single", "clothingId": "shirt", "denoiseSteps": 2}
    status = wait_job(client, client.post("/api/jobs", json=body).json()["jobId"])
    deleted = client.delete(f"/api/jobs/{status['jobId']}")
    assert deleted.status_code == 200 and deleted.json() == status  # finished: left as it is
    assert client.get(f"/api/jobs/{status['jobId']}").json() == status


def test_a_batch_job_keeps_the_requests_order_with_failed_items(
    user: tuple[httpx.Client, str],
) -> None:
    client, _ = user
    register_garment(client, "jacket")
    body = {"type": "batch", "clothingIds": ["nope", "shirt", "jacket"], "denoiseSteps": 2}
    status = wait_job(client, client.post("/api/jobs", json=body).json()["jobId"])
    assert [r["clothingId"] for r in status["results"]] == ["nope", "shirt", "jacket"]
    assert [r["index"] for r in status["results"]] == [0, 1, 2]
    assert [r["success"] for r in status["results"]] == [False, True, True]
    assert "NotRegistered" in status["results"][0]["error"]
    assert status["totalSteps"] == 4  # the garment that never runs takes no steps


def test_cached_items_are_settled_at_submit(user: tuple[httpx.Client, str]) -> None:
    client, _ = user
    body = {"type": "single", "clothingId": "shirt", "denoiseSteps": 2, "seed": 21}
    first = wait_job(client, client.post("/api/jobs", json=body).json()["jobId"])
    assert not first["results"][0]["resultCached"]
    again = client.post("/api/jobs", json=body).json()
    assert again["state"] == "succeeded"  # answered by the result cache before the 202
    (item,) = client.get(again["statusUrl"]).json()["results"]
    assert item["resultCached"] and item["image"] == first["results"][0]["image"]


def test_a_synchronous_tryons_job_is_gone_once_answered(
    server: LiveServer, user: tuple[httpx.Client, str], caplog: pytest.LogCaptureFixture
) -> None:
    client, user_id = user
    with caplog.at_level(logging.INFO, logger="vton.api.requests"):
        response = client.post(
            "/api/fitting/single-item-tryon-v2",
            json={"clothingId": "shirt", "denoiseSteps": 2, "seed": 31},
        )
        assert response.status_code == 200, response.text
        line = wait_for_line(caplog, f"status=200 user={user_id}")
    job_id = line.split(" job=")[1].split()[0]
    assert client.get(f"/api/jobs/{job_id}").status_code == 404
    assert client.delete(f"/api/jobs/{job_id}").status_code == 404
    with pytest.raises(NotRegistered):  # nothing keeps its image
        server.runtime.require().scheduler.get(job_id, user_id)


def test_a_finished_job_answers_get_and_delete_until_its_ttl_then_neither(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    ttl_s = 2.0
    live = LiveServer(make_settings(tiny_model_dir, tmp_path, job_ttl_s=ttl_s)).start()
    try:
        with live.client("ttl-user") as client:
            accepted = client.post("/api/jobs/inline", files=inline_files(), data=INLINE_FORM)
            status = wait_job(client, accepted.json()["jobId"])
            finished = time.monotonic()
            url = f"/api/jobs/{status['jobId']}"
            assert client.get(url).json() == client.delete(url).json() == status
            time.sleep(max(0.0, finished + ttl_s + 0.1 - time.monotonic()))
            assert client.get(url).status_code == 404
            assert client.delete(url).status_code == 404
    finally:
        live.stop()
