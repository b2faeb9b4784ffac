"""Person and garment registration over HTTP, and the cache warm-up."""

from __future__ import annotations

import io

import httpx
from PIL import Image

from tests.api.live import LiveServer, new_user, register_garment, register_person
from vton.service.catalog import results_folder


def test_person_put_get_delete(server: LiveServer) -> None:
    user_id = new_user()
    with server.client(user_id) as client:
        assert client.get("/api/person").status_code == 404
        first = register_person(client, size=(120, 100))
        assert first["categories"] == ["upper_body"]
        assert first["fit"]["originalWidth"] == 120 and first["fit"]["fittedWidth"] == 768
        assert client.get("/api/person").json()["version"] == first["version"]
        second = register_person(client)
        assert second["version"] != first["version"]
        register_garment(client, "shirt")
        tryon = {"clothingId": "shirt", "denoiseSteps": 1}
        assert client.post("/api/fitting/single-item-tryon-v2", json=tryon).status_code == 200
        results = server.runtime.require().loader.store
        assert list(results.list(results_folder(user_id)))

        assert client.delete("/api/person").status_code == 204
        assert client.get("/api/person").status_code == 404
        assert not list(results.list(results_folder(user_id)))  # no images of them are kept
        assert client.delete("/api/person").status_code == 404


def test_clothing_register_list_get_image_delete(server: LiveServer) -> None:
    with server.client(new_user()) as client:
        shirt = register_garment(client, "shirt", description="a blue shirt")
        assert shirt["clothingId"] == "shirt" and shirt["description"] == "a blue shirt"
        generated = client.post(
            "/api/clothing",
            json={k: v for k, v in _body().items() if k != "clothingId"},
        )
        assert generated.status_code == 201
        generated_id = generated.json()["clothingId"]

        listed = {item["clothingId"] for item in client.get("/api/clothing").json()["items"]}
        assert listed == {"shirt", generated_id}
        assert client.get("/api/clothing/shirt").json()["category"] == "upper_body"
        image = client.get("/api/clothing/shirt/image")
        assert image.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(image.content)).size == (768, 1024)

        assert client.delete("/api/clothing/shirt").status_code == 204
        assert client.get("/api/clothing/shirt").status_code == 404
        assert client.get("/api/clothing/shirt/image").status_code == 404
        assert client.delete("/api/clothing/shirt").status_code == 404


def test_warmup_loads_person_and_garments(user: tuple[httpx.Client, str]) -> None:
    client, _ = user
    response = client.post("/api/cache/warmup", json={"clothingIds": ["shirt"]})
    assert response.status_code == 200, response.text
    assert response.json()["loaded"] == 1
    tryon = client.post(
        "/api/fitting/single-item-tryon-v2", json={"clothingId": "shirt", "denoiseSteps": 1}
    )
    assert tryon.json()["cacheHits"] == {"person": "memory", "shirt": "memory"}
    missing = client.post("/api/cache/warmup", json={"clothingIds": ["nope"]})
    assert missing.status_code == 404


def _body() -> dict:
    from tests.api.live import b64_png, garment_image

    return {
        "clothingId": "x",
        "image": b64_png(garment_image()),
        "description": "a top",
        "category": "upper_body",
    }
