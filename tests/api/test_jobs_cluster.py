"""The jobs API in cluster mode (VTON_REDIS_URL): one `vton serve`, one `vton worker`, one
Redis. Result URLs and formats read from the store, the job list, Idempotency-Key, events
without images, a passed deadline's items, and a webhook delivered by the API process."""

from __future__ import annotations

import base64
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

pytest.importorskip("bullmq")

from tests.api.live import SECRET, register_garment, register_person, wait_job
from tests.api.test_jobs import read_events
from tests.api.test_webhooks import WEBHOOK_SECRET, Receiver, wait_delivery
from tests.cluster.conftest import start_redis
from tests.cluster.fleet import Fleet
from vton.api.tokens import TokenCodec


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture(scope="module")
def cluster_client(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path
) -> Iterator[httpx.Client]:
    tmp = tmp_path_factory.mktemp("jobs-cluster")
    (tmp / "redis").mkdir()
    redis = start_redis(tmp / "redis")
    fleet = Fleet(
        tmp,
        {
            "VTON_MODEL_PATH": str(tiny_model_dir),
            "VTON_WIDTH": "96",
            "VTON_HEIGHT": "128",
            "VTON_STORE": f"file://{tmp / 'store'}",
            "VTON_JWT_SECRET": SECRET,
            "VTON_DEVICES": "cpu",
            "VTON_REDIS_URL": redis.url,
            "VTON_QUEUE_NAME": f"vton-jobs-{uuid.uuid4().hex[:6]}",
            "VTON_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
            "VTON_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "VTON_WEBHOOK_BACKOFF_S": "0.2",
            "VTON_WARMUP": "false",
        },
    )
    try:
        api = fleet.api()
        fleet.worker()
        token = TokenCodec(SECRET).mint(f"user-{uuid.uuid4().hex[:8]}", 3600)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=api.url or "", headers=headers, timeout=120) as client:
            register_person(client)
            register_garment(client, "shirt")
            register_garment(client, "jacket")
            yield client
    finally:
        fleet.stop_all()
        redis.stop()


def job(seed: int, **extra: object) -> dict:
    return {"type": "single", "clothingId": "shirt", "denoiseSteps": 2, "seed": seed, **extra}


def test_results_by_url_in_the_asked_format(cluster_client: httpx.Client) -> None:
    client = cluster_client
    png_job = client.post("/api/jobs", json=job(1)).json()["jobId"]
    (item,) = wait_job(client, png_job)["results"]
    png = client.get(item["imageUrl"])
    assert png.headers["content-type"] == "image/png"
    assert png.content == base64.b64decode(item["image"])
    webp_job = client.post("/api/jobs", json=job(1, outputFormat="webp", responseFormat="url"))
    status = wait_job(client, webp_job.json()["jobId"])
    (item,) = status["results"]
    assert status["outputFormat"] == "webp" and item["image"] is None
    with Image.open(io.BytesIO(client.get(item["imageUrl"]).content)) as image:
        assert image.format == "WEBP"
    assert client.get(f"/api/jobs/{png_job}/results/1").status_code == 404


def test_list_idempotency_and_events(cluster_client: httpx.Client) -> None:
    client = cluster_client
    key = {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}
    first = client.post("/api/jobs", json=job(2), headers=key)
    again = client.post("/api/jobs", json=job(2), headers=key)
    assert first.status_code == again.status_code == 202
    assert again.json()["jobId"] == first.json()["jobId"]
    conflict = client.post("/api/jobs", json=job(3), headers=key)
    assert conflict.status_code == 409 and conflict.json()["error"] == "IdempotencyConflict"
    job_id = first.json()["jobId"]
    events = read_events(client, job_id)
    items = [data for name, data in events if name == "item"]
    assert items and all(i["image"] is None and i["imageUrl"] for i in items)
    listed = [j["jobId"] for j in client.get("/api/jobs").json()["jobs"]]
    assert listed[0] == job_id and len(listed) == len(set(listed))


def test_a_passed_deadline_ends_every_item_with_an_event(cluster_client: httpx.Client) -> None:
    client = cluster_client
    body = {"type": "batch", "clothingIds": ["shirt", "jacket"], "denoiseSteps": 2}
    job_id = client.post("/api/jobs", json=body | {"deadlineSeconds": 0.001}).json()["jobId"]
    events = read_events(client, job_id)
    items = [data for name, data in events if name == "item"]
    assert [i["clothingId"] for i in items] == ["shirt", "jacket"]
    assert all(i["state"] == "failed" for i in items)
    assert events[-1][0] == "finished" and "deadline_exceeded" in events[-1][1]["error"]


def test_the_api_process_delivers_the_webhook(
    cluster_client: httpx.Client, receiver: Receiver
) -> None:
    client = cluster_client
    receiver.reset([500])
    body = job(4, webhookUrl=receiver.url, outputFormat="jpeg")
    job_id = client.post("/api/jobs", json=body).json()["jobId"]
    webhook = wait_delivery(client, job_id)["webhook"]
    assert webhook["state"] == "succeeded" and webhook["attempts"] == 2, webhook
    posted = json.loads(receiver.requests[-1][1])
    assert posted["jobId"] == job_id and posted["state"] == "succeeded"
    assert posted["outputFormat"] == "jpeg"
    assert [item["image"] for item in posted["results"]] == [None]
    assert posted["results"][0]["imageUrl"].endswith(f"/api/jobs/{job_id}/results/0")
