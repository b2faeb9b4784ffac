"""Load through the real server: 50 concurrent try-ons all succeed, sharing engine batches; more
than can finish before their deadline are refused at once with 429 and Retry-After, and the
engine computes nothing for a client that has given up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from tests.api.live import (
    STEPS,
    LiveServer,
    make_settings,
    new_user,
    register_garment,
    register_person,
)
from vton.config import Settings
from vton.engine.types import DiffusionOptions, TryOnOutput, TryOnSample
from vton.scheduler import DevicePipelines
from vton.service.engine import DeviceEngine, load_engine

CONCURRENT = 50
SAMPLE_S = 0.25
"""Each sample's added engine time in the overload test: far above the tiny model's own."""
TIMEOUT_S = 5.0


def batch_counts(server: LiveServer, missing_ok: bool = False) -> tuple[float, float]:
    """(engine calls, engine calls of one sample), from the batch-size histogram."""
    return server.metric("vton_batch_size_count", missing_ok), server.metric(
        'vton_batch_size_bucket{device="cpu",le="1.0"}', missing_ok
    )


def post_all(
    server: LiveServer, users: list[str], count: int, first_seed: int = 10_000
) -> list[httpx.Response]:
    """`count` v2 try-ons at once, round-robin over `users`, each with its own seed."""

    async def one(i: int) -> httpx.Response:
        user_id = users[i % len(users)]
        headers = {"Authorization": f"Bearer {server.token(user_id)}"}
        body = {"clothingId": "shirt", "denoiseSteps": STEPS, "seed": first_seed + i}
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=120) as client:
            return await client.post("/api/fitting/single-item-tryon-v2", json=body)

    async def all_of_them() -> list[httpx.Response]:
        return await asyncio.gather(*(one(i) for i in range(count)))

    return asyncio.run(all_of_them())


def registered_users(server: LiveServer, count: int) -> list[str]:
    users = [new_user() for _ in range(count)]
    for user_id in users:
        with server.client(user_id) as client:
            register_person(client)
            register_garment(client, "shirt")
    return users


def test_50_concurrent_requests_succeed_in_shared_batches(server: LiveServer) -> None:
    users = registered_users(server, 5)
    calls_before, singles_before = batch_counts(server, missing_ok=True)
    responses = post_all(server, users, CONCURRENT)
    assert [r.status_code for r in responses] == [200] * CONCURRENT, [
        r.text for r in responses if r.status_code != 200
    ]
    assert all(not r.json()["resultCached"] for r in responses)
    calls, singles = batch_counts(server)
    assert calls - calls_before < CONCURRENT
    assert calls - calls_before > singles - singles_before  # some batches held several


def slowed(
    load: Callable[[Settings, str], DeviceEngine],
) -> Callable[[Settings, str], DeviceEngine]:
    """`load`, with SAMPLE_S more engine time per sample (a steady, known batch duration)."""

    def load_slowed(settings: Settings, device: str) -> DeviceEngine:
        engine = load(settings, device)
        inner = engine.pipelines.main

        def pipeline(
            samples: list[TryOnSample],
            options: DiffusionOptions,
            on_step: Callable[[int, int], None] | None = None,
        ) -> list[TryOnOutput]:
            time.sleep(SAMPLE_S * len(samples))
            return inner(samples, options, on_step)

        return replace(engine, pipelines=DevicePipelines(pipeline, None))

    return load_slowed


@pytest.fixture
def slow_server(tiny_model_dir: Path, tmp_path: Path) -> Iterator[LiveServer]:
    settings = make_settings(
        tiny_model_dir, tmp_path, request_timeout_s=TIMEOUT_S, max_batch=4, batch_window_ms=20
    )
    live = LiveServer(settings, load=slowed(load_engine)).start()
    yield live
    live.stop()


def test_overload_is_refused_at_once_and_nothing_is_computed_for_nobody(
    slow_server: LiveServer,
) -> None:
    users = registered_users(slow_server, 4)
    warm = post_all(slow_server, users[:1], 1, first_seed=0)  # measures the time per sample
    assert warm[0].status_code == 200
    computed_before = slow_server.metric("vton_batch_size_sum")

    started = time.monotonic()
    responses = post_all(slow_server, users, 60)  # 15 at most fit in 3/4 of the 5 s deadline
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) == {200, 429}, [r.text for r in responses if r.status_code >= 500]
    refused = [r for r in responses if r.status_code == 429]
    assert len(refused) >= 45 and statuses.count(200) >= 1
    assert all(r.json()["error"] == "QueueFull" for r in refused)
    assert all(int(r.headers["retry-after"]) >= 1 for r in refused)
    assert time.monotonic() - started < TIMEOUT_S + 5
    computed = slow_server.metric("vton_batch_size_sum") - computed_before
    assert computed == statuses.count(200)  # every sample the engine ran was answered
