"""Liveness, readiness, metrics, the test page, and the request log line."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from tests.api.live import STEPS, WAIT_S, LiveServer, make_settings, wait_for_line


def test_health_and_ready(server: LiveServer) -> None:
    assert httpx.get(f"{server.url}/health").json() == {"status": "alive"}
    ready = httpx.get(f"{server.url}/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["ready"] and body["modelLoaded"] and body["warmedUp"] and body["storeReachable"]
    assert body["personPreprocessing"]  # the tiny model's ckpt/ stand-ins
    assert body["devices"] == ["cpu"]
    assert body["tinyModel"]  # the page then says that its images are noise


def test_metrics_cover_http_queue_batches_phases_and_caches(
    user: tuple[httpx.Client, str], server: LiveServer
) -> None:
    client, _ = user
    client.post(
        "/api/fitting/single-item-tryon-v2", json={"clothingId": "shirt", "denoiseSteps": 1}
    )
    text = httpx.get(f"{server.url}/metrics").text
    for name in (
        'vton_http_requests_total{method="POST",route="/api/fitting/single-item-tryon-v2",'
        'status="200"}',
        "vton_http_request_seconds_bucket",
        'vton_queue_depth{device="cpu"}',
        "vton_batch_size_bucket",
        'vton_phase_seconds_count{phase="diffusion"}',
        "vton_cache_l1_hits_total",
        "vton_cache_store_loads_total",
    ):
        assert name in text, name


def test_the_test_page_is_served(server: LiveServer) -> None:
    page = httpx.get(f"{server.url}/")
    assert page.status_code == 200 and "vton test page" in page.text
    for module in ("app", "api", "dom", "person", "garments", "job", "jobs-list", "results"):
        script = httpx.get(f"{server.url}/static/{module}.js")
        assert script.status_code == 200, module
        assert "javascript" in script.headers["content-type"], module  # a module needs it
    assert "/api/jobs" in httpx.get(f"{server.url}/static/job.js").text


def test_one_structured_log_line_per_request(
    user: tuple[httpx.Client, str], caplog: pytest.LogCaptureFixture
) -> None:
    client, user_id = user
    with caplog.at_level(logging.INFO, logger="vton.api.requests"):
        client.post(
            "/api/fitting/single-item-tryon-v2",
            json={"clothingId": "shirt", "denoiseSteps": STEPS, "seed": 5},
        )
        line = wait_for_line(caplog, f"status=200 user={user_id}")
    assert line.startswith("request method=POST route=/api/fitting/single-item-tryon-v2 status=200")
    for field in ("clothing=shirt", "cache=person:", "result_cached=false"):
        assert field in line, line
    for phase in (
        "artifacts_ms=",
        "queue_ms=",
        "encode_ms=",
        "diffusion_ms=",
        "decode_ms=",
        "total_ms=",
    ):
        assert phase in line, line


def test_ready_says_why_when_the_model_cannot_load(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "no-model", tmp_path)
    live = LiveServer(settings)
    live.start(ready=False)
    try:
        assert live.runtime.wait_loaded(WAIT_S)
        ready = httpx.get(f"{live.url}/ready")
        assert ready.status_code == 503
        assert "model folder not found" in ready.json()["detail"]
        assert httpx.get(f"{live.url}/health").status_code == 200
        with live.client("u") as client:
            response = client.get("/api/clothing")
        assert response.status_code == 503 and response.headers["retry-after"]
        assert "failed to start" in response.json()["detail"]
    finally:
        live.stop()
