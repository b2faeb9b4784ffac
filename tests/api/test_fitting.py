"""Synchronous try-ons through the real server: v2 by reference, v1 inline, batch."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
from PIL import Image

from tests.api.live import (
    STEPS,
    LiveServer,
    garment_image,
    person_images,
    png_bytes,
    register_garment,
)


def decode(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def tryon(client: httpx.Client, **body: object) -> httpx.Response:
    return client.post(
        "/api/fitting/single-item-tryon-v2",
        json={"clothingId": "shirt", "denoiseSteps": STEPS, **body},
    )


def test_v2_returns_image_timings_and_cache_sources(user: tuple[httpx.Client, str]) -> None:
    client, _ = user
    first = tryon(client, seed=1)
    assert first.status_code == 200, first.text
    body = first.json()
    assert decode(body["image"]).size == (96, 128)
    assert body["clothingId"] == "shirt"
    assert body["resultCached"] is False
    assert body["cacheHits"] == {"person": "store", "shirt": "store"}  # just registered
    timings = body["timings"]
    assert timings["diffusion"] > 0 and timings["png"] > 0
    assert timings["total"] >= timings["diffusion"] + timings["png"]

    again = tryon(client, seed=1).json()
    assert again["resultCached"] is True
    assert again["cacheHits"] == {"person": "memory", "shirt": "memory"}
    assert again["image"] == body["image"]


def test_a_repeat_garment_is_tried_on_without_garment_net(
    server: LiveServer, user: tuple[httpx.Client, str]
) -> None:
    client, _ = user
    pipeline = server.runtime.require().engines[0].pipeline
    first = tryon(client, seed=11)
    assert first.status_code == 200, first.text
    hits = server.metric("vton_garment_cache_hits_total")
    assert server.metric("vton_garment_cache_entries") >= 1
    calls: list[int] = []
    hook = pipeline.model.garment_net.register_forward_hook(lambda *_: calls.append(1))
    try:
        second = tryon(client, seed=12)  # another seed: not the result cache's image
    finally:
        hook.remove()
    assert second.status_code == 200, second.text
    assert second.json()["resultCached"] is False
    assert calls == []  # its features came from the garment feature cache
    assert server.metric("vton_garment_cache_hits_total") == hits + 1
    assert second.json()["image"] != first.json()["image"]


def test_v2_answers_png_when_asked(user: tuple[httpx.Client, str]) -> None:
    client, _ = user
    response = client.post(
        "/api/fitting/single-item-tryon-v2",
        json={"clothingId": "shirt", "denoiseSteps": STEPS},
        headers={"Accept": "image/png"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert "diffusion;dur=" in response.headers["server-timing"]
    assert Image.open(io.BytesIO(response.content)).size == (96, 128)


def test_paste_back_keeps_the_person_outside_the_mask(user: tuple[httpx.Client, str]) -> None:
    client, _ = user
    kept = decode(tryon(client, pasteBack=True).json()["image"]).convert("RGB")
    raw = decode(tryon(client, pasteBack=False).json()["image"]).convert("RGB")
    background = (30, 160, 90)  # the person photo's flat background (registered, fitted)
    corner = np.asarray(kept)[:10, :10].reshape(-1, 3)
    assert (corner == background).all()
    assert not (np.asarray(raw)[:10, :10].reshape(-1, 3) == background).all()


def outside_torso(image: Image.Image, margin: int = 4) -> np.ndarray:
    """The pixels outside person_images' torso (its mask), `margin` px clear of the edge."""
    w, h = image.size
    outside = np.ones((h, w), dtype=bool)
    top, bottom = h // 4 - margin, 3 * h // 4 + margin + 1
    left, right = w // 4 - margin, 3 * w // 4 + margin + 1
    outside[top:bottom, left:right] = False
    return np.asarray(image.convert("RGB"))[outside]


def test_paste_back_keeps_every_pixel_outside_the_mask(
    server: LiveServer, user: tuple[httpx.Client, str]
) -> None:
    background = (30, 160, 90)
    client, _ = user
    v2 = decode(tryon(client, seed=3).json()["image"])
    assert (outside_torso(v2) == background).all()
    files = {
        name: (f"{name}.png", png_bytes(image), "image/png")
        for name, image in person_images().items()
    } | {"garment": ("garment.png", png_bytes(garment_image()), "image/png")}
    data = {"description": "a red t-shirt", "category": "upper_body", "denoiseSteps": STEPS}
    with server.client("inline-user") as inline:
        response = inline.post("/api/fitting/single-item-tryon", files=files, data=data)
    assert response.status_code == 200, response.text
    assert (outside_torso(decode(response.json()["image"])) == background).all()


def test_finish_options_never_share_a_cached_image(user: tuple[httpx.Client, str]) -> None:
    client, _ = user
    kept = tryon(client, seed=5).json()
    raw = tryon(client, seed=5, pasteBack=False).json()
    assert not raw["resultCached"] and raw["image"] != kept["image"]
    assert not tryon(client, seed=5, fit="original").json()["resultCached"]
    again = tryon(client, seed=5, pasteBack=False).json()
    assert again["resultCached"] and again["image"] == raw["image"]
    assert tryon(client, seed=5).json()["image"] == kept["image"]


def test_fit_original_returns_the_photo_framing(server: LiveServer) -> None:
    from tests.api.live import new_user, register_person

    with server.client(new_user()) as client:
        register_person(client, size=(120, 100))  # landscape: padded into 3:4
        register_garment(client, "shirt")
        body = tryon(client, fit="original").json()
        assert decode(body["image"]).size == (120, 100)
        assert decode(tryon(client).json()["image"]).size == (96, 128)


def test_v1_inline_tryon_stores_nothing(server: LiveServer) -> None:
    images = person_images()
    files = {
        name: (f"{name}.png", png_bytes(image), "image/png") for name, image in images.items()
    } | {"garment": ("garment.png", png_bytes(garment_image()), "image/png")}
    data = {"description": "a red t-shirt", "category": "upper_body", "denoiseSteps": STEPS}
    with server.client("inline-user") as client:
        response = client.post("/api/fitting/single-item-tryon", files=files, data=data)
        assert response.status_code == 200, response.text
        assert decode(response.json()["image"]).size == (96, 128)
        assert client.get("/api/person").status_code == 404


def test_batch_items_fail_alone(user: tuple[httpx.Client, str]) -> None:
    client, _ = user
    register_garment(client, "dress", category="dresses")  # the person has no dresses mask
    register_garment(client, "jacket")
    response = client.post(
        "/api/fitting/batch-tryon",
        json={"clothingIds": ["shirt", "missing", "jacket", "dress"], "denoiseSteps": STEPS},
    )
    assert response.status_code == 200, response.text
    results = {r["clothingId"]: r for r in response.json()["results"]}
    assert results["shirt"]["success"] and results["jacket"]["success"]
    assert decode(results["shirt"]["image"]).size == (96, 128)
    assert not results["missing"]["success"] and "NotRegistered" in results["missing"]["error"]
    assert not results["dress"]["success"] and "dresses" in results["dress"]["error"]
    assert response.json()["totalProcessingTime"] > 0
