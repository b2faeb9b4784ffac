"""50 concurrent try-ons through the real server all succeed, sharing engine batches."""

from __future__ import annotations

import asyncio

import httpx

from tests.api.live import STEPS, LiveServer, new_user, register_garment, register_person

CONCURRENT = 50


def batch_counts(server: LiveServer, missing_ok: bool = False) -> tuple[float, float]:
    """(engine calls, engine calls of one sample), from the batch-size histogram."""
    return server.metric("vton_batch_size_count", missing_ok), server.metric(
        'vton_batch_size_bucket{device="cpu",le="1.0"}', missing_ok
    )


def test_50_concurrent_requests_succeed_in_shared_batches(server: LiveServer) -> None:
    users = [new_user() for _ in range(5)]
    for user_id in users:
        with server.client(user_id) as client:
            register_person(client)
            register_garment(client, "shirt")
    calls_before, singles_before = batch_counts(server, missing_ok=True)

    async def one(i: int) -> httpx.Response:
        user_id = users[i % len(users)]
        headers = {"Authorization": f"Bearer {server.token(user_id)}"}
        body = {"clothingId": "shirt", "denoiseSteps": STEPS, "seed": 10_000 + i}
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=120) as client:
            return await client.post("/api/fitting/single-item-tryon-v2", json=body)

    async def all_of_them() -> list[httpx.Response]:
        return await asyncio.gather(*(one(i) for i in range(CONCURRENT)))

    responses = asyncio.run(all_of_them())
    assert [r.status_code for r in responses] == [200] * CONCURRENT, [
        r.text for r in responses if r.status_code != 200
    ]
    assert all(not r.json()["resultCached"] for r in responses)
    calls, singles = batch_counts(server)
    assert calls - calls_before < CONCURRENT
    assert calls - calls_before > singles - singles_before  # some batches held several
