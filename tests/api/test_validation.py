"""Bad requests get a clear 4xx, and the server is unharmed afterwards."""

from __future__ import annotations

import base64
import io
import socket
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.api.live import (
    STEPS,
    LiveServer,
    b64_png,
    garment_image,
    make_settings,
    person_images,
    png_bytes,
)


def huge_png_header(width: int = 20000, height: int = 20000) -> bytes:
    """A PNG that declares width x height (an IHDR and an empty image stream): decoding it would
    need gigabytes, reading its header costs nothing."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def assert_clear_4xx(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] and body["detail"]
    for word in words:
        assert word in body["detail"], body["detail"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (
            {"clothingId": "shirt", "denoiseSteps": 0},
            ["denoiseSteps", "greater than or equal to 1"],
        ),
        ({"clothingId": "shirt", "denoiseSteps": 1000}, ["denoiseSteps", "less than or equal"]),
        ({"clothingId": "shirt", "category": "hats"}, ["category"]),
        ({"clothingId": "shirt", "scheduler": "magic"}, ["scheduler"]),
        ({"clothingId": "../../etc/passwd"}, ["clothing_id"]),
        ({"clothingId": "shirt", "extra": 1}, ["extra"]),
        ({"clothingId": "shirt", "denoiseSteps": True}, ["denoiseSteps", "integer"]),
        ({"clothingId": "shirt", "seed": "42"}, ["seed", "integer"]),
        ({"clothingId": "shirt", "guidanceScale": "2.5"}, ["guidanceScale", "number"]),
        ({"clothingId": "shirt", "pasteBack": "yes"}, ["pasteBack", "boolean"]),
        ({}, ["clothingId", "Field required"]),
    ],
)
def test_v2_rejects_bad_fields(
    user: tuple[httpx.Client, str], body: dict, words: list[str]
) -> None:
    client, _ = user
    response = client.post("/api/fitting/single-item-tryon-v2", json=body)
    assert_clear_4xx(response, 422, *words)


def test_batch_rejects_empty_and_oversized_lists(user: tuple[httpx.Client, str]) -> None:
    client, _ = user
    empty = client.post("/api/fitting/batch-tryon", json={"clothingIds": []})
    assert_clear_4xx(empty, 422, "clothingIds")
    too_many = [f"c{i}" for i in range(11)]  # VTON_MAX_BATCH_ITEMS is 10
    oversized = client.post("/api/fitting/batch-tryon", json={"clothingIds": too_many})
    assert_clear_4xx(oversized, 422, "at most 10")
    twice = client.post("/api/fitting/batch-tryon", json={"clothingIds": ["shirt", "shirt"]})
    assert_clear_4xx(twice, 422, "twice")


def test_registration_rejects_bad_base64_and_bad_images(user: tuple[httpx.Client, str]) -> None:
    client, _ = user
    good = {"image": b64_png(garment_image()), "description": "a top", "category": "upper_body"}
    for field, value, words in [
        ("image", "not base64 !!", ["image", "base64"]),
        ("image", "aGVsbG8=", ["image", "not a readable image"]),
        ("category", "hats", ["category"]),
        ("description", "", ["description"]),
    ]:
        response = client.post("/api/clothing", json={**good, field: value})
        assert_clear_4xx(response, 422, *words)
    images = person_images()
    person = {
        "image": b64_png(images["person"]),
        "masks": {"upper_body": "%%%"},
        "pose": b64_png(images["pose"]),
    }
    assert_clear_4xx(client.put("/api/person", json=person), 422, "masks.upper_body", "base64")


def test_a_20000_px_square_png_is_refused_unread(user: tuple[httpx.Client, str]) -> None:
    client, _ = user
    body = {
        "image": base64.b64encode(huge_png_header()).decode(),
        "description": "a top",
        "category": "upper_body",
    }
    assert_clear_4xx(client.post("/api/clothing", json=body), 413, "image", "pixels")


def test_a_one_colour_7000_px_square_photo_is_refused_unread(
    user: tuple[httpx.Client, str],
) -> None:
    """572 KB of body, 49 megapixels: over VTON_MAX_IMAGE_PIXELS, refused from its header (the
    truncated copy would not decode, so a 413 for it means nothing was decoded)."""
    client, _ = user
    out = io.BytesIO()
    Image.new("RGB", (7000, 7000), (200, 30, 30)).save(out, "PNG", compress_level=1)
    for data in (out.getvalue(), out.getvalue()[: out.tell() // 2]):
        body = {"image": base64.b64encode(data).decode()}
        response = client.put("/api/person", json=body)
        assert_clear_4xx(response, 413, "image: 7000x7000", "pixels")


def test_uploads_wait_for_the_decode_budget_then_answer_429(
    server: LiveServer, user: tuple[httpx.Client, str]
) -> None:
    """With the whole decode budget taken, an upload answers 429 + Retry-After after the
    budget's short wait; once it is free again, the same upload registers."""
    client, _ = user
    runtime_service = server.runtime.service
    assert runtime_service is not None
    budget = runtime_service.catalog.uploads
    body = {
        "clothingId": "busy",
        "image": b64_png(garment_image()),
        "description": "a top",
        "category": "upper_body",
    }
    with budget.hold(budget.capacity_bytes):
        response = client.post("/api/clothing", json=body)
    assert_clear_4xx(response, 429, "decod")
    assert int(response.headers["Retry-After"]) >= 1
    assert client.post("/api/clothing", json=body).status_code == 201
    assert budget.in_use_bytes == 0


def test_a_50_mb_upload_is_refused(server: LiveServer) -> None:
    images = person_images()
    files = {name: (f"{name}.png", png_bytes(image), "image/png") for name, image in images.items()}
    files["garment"] = ("garment.png", b"\0" * (50 * 2**20), "image/png")
    with server.client("big-uploader") as client:
        response = client.post(
            "/api/fitting/single-item-tryon", files=files, data={"description": "a top"}
        )
    assert_clear_4xx(response, 413, "over")


def test_an_oversize_chunked_json_body_answers_413(server: LiveServer) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding chunked
        yield b'{"clothingId": "shirt", "image": "'
        for _ in range(5):  # 5 MiB, over the server's 4 MiB
            yield b"A" * 2**20
        yield b'"}'

    with server.client("chunked-uploader") as client:
        response = client.post(
            "/api/clothing", content=chunks(), headers={"Content-Type": "application/json"}
        )
    assert_clear_4xx(response, 413, "over")


def test_a_body_that_never_finishes_answers_408_and_closes(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    live = LiveServer(make_settings(tiny_model_dir, tmp_path, body_timeout_s=1.0))
    live.start(ready=False)  # the body is read before any route runs
    try:
        host, port = live.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"PUT /api/person HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 1000\r\n\r\n{"image": "'
            )
            started = time.monotonic()
            answer = sock.recv(65536)
            answered = time.monotonic() - started
            while chunk := sock.recv(65536):  # until the server closes the connection
                answer += chunk
            closed = time.monotonic() - started
    finally:
        live.stop()
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"did not arrive within 1 s" in answer
    assert 0.9 < answered < 3.0 and closed < 3.0  # uvicorn alone holds it 5 s past the answer


def test_inline_rejects_a_file_that_is_not_an_image(server: LiveServer) -> None:
    images = person_images()
    files = {name: (f"{name}.png", png_bytes(image), "image/png") for name, image in images.items()}
    files["garment"] = ("garment.png", b"definitely not a png", "image/png")
    with server.client("inline-user") as client:
        response = client.post(
            "/api/fitting/single-item-tryon", files=files, data={"description": "a top"}
        )
    assert_clear_4xx(response, 422, "garment")


def test_the_server_is_unharmed(user: tuple[httpx.Client, str], server: LiveServer) -> None:
    test_a_50_mb_upload_is_refused(server)
    client, _ = user
    response = client.post(
        "/api/fitting/single-item-tryon-v2", json={"clothingId": "shirt", "denoiseSteps": STEPS}
    )
    assert response.status_code == 200
    assert httpx.get(server.url + "/ready").status_code == 200
