"""A silent store through the real server (S3 on moto's server, frozen): requests answer 503 with
Retry-After within the per-call bound, then at once once the circuit breaker is open; /ready
answers 503 within a second from the breaker's state; all recovers once the store answers.
Try-ons whose artifacts are cached are served meanwhile, saying so, for VTON_STALE_IF_ERROR_S."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import httpx
import pytest

from tests.api.live import (
    LiveServer,
    b64_png,
    garment_image,
    make_settings,
    new_user,
    register_garment,
    register_person,
)
from tests.s3_server import S3TestServer

CALL_S = 1.0
OPEN_S = 2.0
STALE_S = 6.0


@pytest.fixture
def store_server(
    tiny_model_dir: Path, s3_server: S3TestServer, tmp_path: Path
) -> Iterator[LiveServer]:
    bucket = f"faults-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server.endpoint_url).create_bucket(Bucket=bucket)
    settings = make_settings(
        tiny_model_dir,
        tmp_path,
        store=f"s3://{bucket}/vton",
        s3_endpoint_url=s3_server.endpoint_url,
        s3_read_timeout_s=5.0,  # boto3 alone: up to 3 x 5 s on a silent server
        store_call_timeout_s=CALL_S,
        store_breaker_failures=2,
        store_breaker_open_s=OPEN_S,
        stale_if_error_s=STALE_S,
        warmup=False,
    )
    live = LiveServer(settings).start()
    yield live
    live.stop()


def timed(call: Callable[[], httpx.Response]) -> tuple[float, httpx.Response]:
    start = time.monotonic()
    response = call()
    return time.monotonic() - start, response


def test_a_silent_store_answers_503_fast_and_recovers(
    store_server: LiveServer, s3_server: S3TestServer
) -> None:
    client = store_server.client(new_user())
    register_person(client)
    register_garment(client, "shirt")
    body = {"clothingId": "shirt", "denoiseSteps": 1}
    assert client.post("/api/fitting/single-item-tryon-v2", json=body).status_code == 200

    s3_server.freeze()
    try:
        for _ in range(2):  # store calls time out; two failed calls open the breaker
            elapsed, response = timed(lambda: register_garment_response(client, "other"))
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "StoreUnavailable"
            assert int(response.headers["retry-after"]) >= 1
            assert elapsed < CALL_S + 1.0
        elapsed, response = timed(lambda: register_garment_response(client, "other"))
        assert response.status_code == 503 and "breaker open" in response.json()["detail"]
        assert int(response.headers["retry-after"]) >= 1
        assert elapsed < 0.5
        assert store_server.metric("vton_store_breaker_open") == 1
        assert store_server.metric("vton_store_breaker_rejected_total") >= 1
        assert store_server.metric("vton_store_call_failures_total") >= 2
        elapsed, ready = timed(lambda: httpx.get(f"{store_server.url}/ready"))
        assert ready.status_code == 503 and not ready.json()["storeReachable"]
        assert int(ready.headers["retry-after"]) >= 1
        assert elapsed < 1.0
    finally:
        s3_server.thaw()

    wait_ready(store_server)
    assert register_garment_response(client, "other").status_code == 201
    assert client.post("/api/fitting/single-item-tryon-v2", json=body).status_code == 200
    assert store_server.metric("vton_store_breaker_open") == 0
    client.close()


def register_garment_response(client: httpx.Client, clothing_id: str) -> httpx.Response:
    body = {
        "clothingId": clothing_id,
        "image": b64_png(garment_image()),
        "description": "a shirt",
        "category": "upper_body",
    }
    return client.post("/api/clothing", json=body)


def wait_ready(server: LiveServer) -> None:
    """Until /ready answers 200: a background probe is the breaker's trial call."""
    deadline = time.monotonic() + OPEN_S + 3 * CALL_S + 2
    while httpx.get(f"{server.url}/ready").status_code != 200:
        assert time.monotonic() < deadline, "the breaker did not close"
        time.sleep(0.05)


def test_cached_try_ons_are_served_stale_while_the_store_is_down(
    store_server: LiveServer, s3_server: S3TestServer
) -> None:
    client = store_server.client(new_user())
    register_person(client)
    register_garment(client, "shirt")

    def tryon(seed: int) -> httpx.Response:
        body = {"clothingId": "shirt", "denoiseSteps": 1, "seed": seed}
        return client.post("/api/fitting/single-item-tryon-v2", json=body)

    def batch(seed: int) -> httpx.Response:
        body = {"clothingIds": ["shirt"], "denoiseSteps": 1, "seed": seed}
        return client.post("/api/fitting/batch-tryon", json=body)

    fresh = tryon(0)  # the caches are warm from here, the manifests confirmed now
    confirmed = time.monotonic()
    assert fresh.status_code == 200 and fresh.json()["staleSeconds"] is None

    s3_server.freeze()
    try:
        for seed in (1, 2, 3):  # computed, not from the result cache
            response = tryon(seed)
            assert response.status_code == 200, response.text
            assert not response.json()["resultCached"]
            assert 0 <= response.json()["staleSeconds"] <= STALE_S
            assert response.json()["cacheHits"] == {"person": "memory", "shirt": "memory"}
        response = batch(4)
        assert response.status_code == 200 and response.json()["results"][0]["success"]
        assert 0 <= response.json()["staleSeconds"] <= STALE_S
        assert store_server.metric("vton_cache_stale_manifests_served_total") >= 2 * 4
        person = client.get("/api/person")  # not a try-on: never stale
        assert person.status_code == 503 and int(person.headers["retry-after"]) >= 1
        time.sleep(max(0.0, confirmed + STALE_S + 0.5 - time.monotonic()))
        expired = tryon(5)
        assert expired.status_code == 503, expired.text
        assert expired.json()["error"] == "StoreUnavailable"
        assert int(expired.headers["retry-after"]) >= 1
    finally:
        s3_server.thaw()

    wait_ready(store_server)
    again = tryon(6)  # read fresh again
    assert again.status_code == 200 and again.json()["staleSeconds"] is None
    register_garment(client, "shirt", description="a blue shirt")  # a new version
    new = tryon(7)
    assert new.status_code == 200 and new.json()["cacheHits"]["shirt"] == "store"
    s3_server.freeze()
    try:  # what stands in now is the new registration (its artifacts are the cached ones)
        stale = tryon(7)
        assert stale.status_code == 200 and stale.json()["resultCached"]
        stale = tryon(8)
        assert stale.status_code == 200 and stale.json()["cacheHits"]["shirt"] == "memory"
        assert stale.json()["staleSeconds"] is not None
    finally:
        s3_server.thaw()
    client.close()
