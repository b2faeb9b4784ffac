"""Job results by URL: GET /api/jobs/{id}/results/{index} in the job's outputFormat (owner
only), base64 in GET /api/jobs/{id} only when asked, never in events."""

from __future__ import annotations

import base64
import io

import httpx
import pytest
from PIL import Image

from tests.api.live import LiveServer, new_user, wait_job
from tests.api.test_jobs import read_events


def submit(client: httpx.Client, seed: int, **extra: object) -> dict:
    body = {"type": "single", "clothingId": "shirt", "denoiseSteps": 2, "seed": seed, **extra}
    response = client.post("/api/jobs", json=body)
    assert response.status_code == 202, response.text
    return wait_job(client, response.json()["jobId"])


def test_the_result_url_serves_the_png_that_base64_carries(user: tuple[httpx.Client, str]) -> None:
    client, _ = user
    status = submit(client, seed=101)
    (item,) = status["results"]
    assert status["outputFormat"] == "png"
    assert item["imageUrl"] == f"/api/jobs/{status['jobId']}/results/0"
    response = client.get(item["imageUrl"])
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.content == base64.b64decode(item["image"])


def test_response_format_url_leaves_base64_out(user: tuple[httpx.Client, str]) -> None:
    client, _ = user
    status = submit(client, seed=102, responseFormat="url")
    (item,) = status["results"]
    assert item["image"] is None and item["imageUrl"]
    assert client.get(item["imageUrl"]).status_code == 200


@pytest.mark.parametrize(
    ("fmt", "media", "pil"), [("jpeg", "image/jpeg", "JPEG"), ("webp", "image/webp", "WEBP")]
)
def test_jpeg_and_webp_are_encoded_from_the_same_result(
    user: tuple[httpx.Client, str], fmt: str, media: str, pil: str
) -> None:
    client, _ = user
    png_status = submit(client, seed=103)
    png = client.get(png_status["results"][0]["imageUrl"]).content
    status = submit(client, seed=103, outputFormat=fmt, outputQuality=80)
    (item,) = status["results"]
    assert item["resultCached"]  # the same try-on: the cached PNG, in another format
    assert status["outputFormat"] == fmt
    response = client.get(item["imageUrl"])
    assert response.headers["content-type"] == media
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.format == pil
        with Image.open(io.BytesIO(png)) as reference:
            assert image.size == reference.size
    assert base64.b64decode(item["image"]) == response.content
    low = submit(client, seed=103, outputFormat=fmt, outputQuality=5)
    assert len(client.get(low["results"][0]["imageUrl"]).content) < len(response.content)


def test_events_carry_urls_not_images(user: tuple[httpx.Client, str]) -> None:
    client, _ = user
    job = client.post(
        "/api/jobs",
        json={"type": "single", "clothingId": "shirt", "denoiseSteps": 2, "seed": 104},
    ).json()["jobId"]
    items = [data for name, data in read_events(client, job) if name == "item"]
    assert items and all(i["image"] is None and i["imageUrl"] for i in items)


def test_only_the_owner_reads_a_result(server: LiveServer, user: tuple[httpx.Client, str]) -> None:
    client, _ = user
    status = submit(client, seed=105)
    url = status["results"][0]["imageUrl"]
    with server.client(new_user()) as stranger:
        response = stranger.get(url)
    assert response.status_code == 404 and response.json()["error"] == "NotRegistered"
    assert client.get(f"/api/jobs/{status['jobId']}/results/1").status_code == 404
    assert client.get(f"/api/jobs/{status['jobId']}/results/-1").status_code == 422
    with server.client() as anonymous:
        assert anonymous.get(url).status_code == 401


def test_a_failed_item_has_no_url(user: tuple[httpx.Client, str]) -> None:
    client, _ = user
    body = {"type": "batch", "clothingIds": ["shirt", "nope"], "denoiseSteps": 2, "seed": 106}
    status = wait_job(client, client.post("/api/jobs", json=body).json()["jobId"])
    ok, failed = status["results"]
    assert ok["imageUrl"] and failed["imageUrl"] is None
    assert client.get(f"/api/jobs/{status['jobId']}/results/1").status_code == 404
