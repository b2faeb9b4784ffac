"""Every error answers the documented shape, `{"error": <type>, "detail": <message>}`: the
router's own (unknown route, method not allowed) too; no message shows a Python object's repr;
images too small to show a person or a garment are refused."""

from __future__ import annotations

import base64
import re

import httpx
import pytest
from PIL import Image

from tests.api.live import LiveServer, b64_png, garment_image, person_images, png_bytes

OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>|Traceback|\bat 0x[0-9a-f]{6,}")


def error_of(response: httpx.Response, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    assert not OBJECT_REPR.search(body["detail"]), body["detail"]
    return body


@pytest.mark.parametrize(
    ("method", "path", "status", "error", "words"),
    [
        ("GET", "/nope", 404, "NotFound", ["GET /nope"]),
        ("GET", "/api/nothing/here", 404, "NotFound", ["/api/nothing/here"]),
        ("GET", "/static/missing.js", 404, "NotFound", []),
        ("POST", "/health", 405, "MethodNotAllowed", ["POST /health"]),
        ("PATCH", "/api/person", 405, "MethodNotAllowed", []),
    ],
)
def test_router_errors_answer_the_api_shape(
    server: LiveServer, method: str, path: str, status: int, error: str, words: list[str]
) -> None:
    with server.client("someone") as client:
        response = client.request(method, path)
    body = error_of(response, status)
    assert body["error"] == error
    for word in words:
        assert word in body["detail"], body["detail"]
    if status == 405:
        assert response.headers["allow"]


def test_no_error_message_shows_an_object_repr(user: tuple[httpx.Client, str]) -> None:
    client, _ = user
    not_an_image = base64.b64encode(b"hello, not an image").decode()
    garment = {"clothingId": "g", "description": "a top", "category": "upper_body"}
    body = error_of(client.post("/api/clothing", json={**garment, "image": not_an_image}), 422)
    assert body["detail"] == "image: not a readable image (no image format recognised)"
    body = error_of(client.put("/api/person", json={"image": not_an_image}), 422)
    assert "not a readable image" in body["detail"]
    images = person_images()
    files = {name: png_bytes(image) for name, image in images.items()}
    files["garment"] = b"GIF89a but not really"
    form = {"description": "a top"}
    response = client.post("/api/fitting/single-item-tryon", files=files, data=form)
    assert "garment: not a readable image" in error_of(response, 422)["detail"]
    response = client.post(
        "/api/clothing", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert error_of(response, 422)["detail"].startswith("body: not valid JSON")
    error_of(client.post("/api/clothing", json=[1, 2]), 422)
    error_of(client.post("/api/jobs", json={"type": "other"}), 422)


@pytest.mark.parametrize("side", [8, 63])
def test_a_too_small_garment_is_refused(user: tuple[httpx.Client, str], side: int) -> None:
    client, _ = user
    small = b64_png(Image.new("RGB", (side, side), (200, 30, 40)))
    body = {"clothingId": "tiny", "image": small, "description": "a top", "category": "upper_body"}
    detail = error_of(client.post("/api/clothing", json=body), 422)["detail"]
    assert detail == f"image: {side}x{side} is too small (at least 64 px a side)"
    assert client.get("/api/clothing/tiny").status_code == 404


def test_a_64_px_garment_is_accepted(user: tuple[httpx.Client, str]) -> None:
    client, _ = user
    image = b64_png(garment_image().resize((64, 85)))
    body = {"clothingId": "small", "image": image, "description": "a top", "category": "upper_body"}
    assert client.post("/api/clothing", json=body).status_code in (200, 201)


def test_too_small_v1_images_are_refused(user: tuple[httpx.Client, str]) -> None:
    client, _ = user
    files = {name: png_bytes(image) for name, image in person_images().items()}
    files["garment"] = png_bytes(Image.new("RGB", (8, 8), (200, 30, 40)))
    response = client.post(
        "/api/fitting/single-item-tryon", files=files, data={"description": "a top"}
    )
    assert "garment: 8x8 is too small" in error_of(response, 422)["detail"]
