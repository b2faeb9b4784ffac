"""Person and garment registration over HTTP (a person from a photo alone too), and the cache
warm-up."""

from __future__ import annotations

import base64
import io
import shutil
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.api.live import (
    WAIT_S,
    LiveServer,
    b64_png,
    make_settings,
    new_user,
    register_garment,
    register_person,
)
from vton.preprocess.body.standins import demo_person
from vton.preprocess.fit import fit_photo
from vton.preprocess.person import binarize
from vton.service.catalog import results_folder
from vton.service.results import ResultKey


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


def test_a_deleted_persons_results_leave_its_jobs_and_the_result_cache(server: LiveServer) -> None:
    user_id = new_user()
    results = server.runtime.require().tryons.results.memory

    def cached_results() -> list[ResultKey]:
        return [key for key in results.lru_order() if key.person.user_id == user_id]

    with server.client(user_id) as client:
        register_person(client)
        register_garment(client, "shirt")
        tryon = {"clothingId": "shirt", "denoiseSteps": 1}
        assert client.post("/api/fitting/single-item-tryon-v2", json=tryon).status_code == 200
        job = client.post("/api/jobs", json={"type": "single", **tryon, "seed": 1}).json()["jobId"]
        deadline = time.monotonic() + 60
        while client.get(f"/api/jobs/{job}").json()["state"] != "succeeded":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert len(cached_results()) == 2
        assert client.delete("/api/person").status_code == 204
        assert client.get(f"/api/jobs/{job}").status_code == 404
        assert client.delete(f"/api/jobs/{job}").status_code == 404
        assert cached_results() == []  # no image of them stays in memory either


def test_a_deleted_garments_results_leave_its_jobs_and_the_result_cache(
    server: LiveServer,
) -> None:
    user_id = new_user()
    results = server.runtime.require().tryons.results.memory

    def cached_garments() -> list[str]:
        return [
            key.garment.clothing_id for key in results.lru_order() if key.person.user_id == user_id
        ]

    with server.client(user_id) as client:
        register_person(client)
        register_garment(client, "shirt")
        register_garment(client, "kept")
        jobs = {}
        for clothing_id in ("shirt", "kept"):
            body = {"type": "single", "clothingId": clothing_id, "denoiseSteps": 1}
            jobs[clothing_id] = client.post("/api/jobs", json=body).json()["jobId"]
        deadline = time.monotonic() + 60
        for job in jobs.values():
            while client.get(f"/api/jobs/{job}").json()["state"] != "succeeded":
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert sorted(cached_garments()) == ["kept", "shirt"]
        assert client.delete("/api/clothing/shirt").status_code == 204
        assert client.get(f"/api/jobs/{jobs['shirt']}").status_code == 404
        assert client.get(f"/api/jobs/{jobs['kept']}").status_code == 200
        assert cached_garments() == ["kept"]
        assert client.delete("/api/clothing/shirt").status_code == 404


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


# -- registration from a photo alone (person preprocessing with the tiny stand-ins) -------------


def stored_png(client: httpx.Client, category: str, name: str) -> np.ndarray:
    response = client.get(f"/api/person/images/{category}/{name}")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.content)))


def test_a_person_registers_from_a_photo_alone(server: LiveServer) -> None:
    photo = demo_person()
    with server.client(new_user()) as client:
        response = client.put("/api/person", json={"image": b64_png(photo)})
        assert response.status_code == 200, response.text
        person = response.json()
        assert person["categories"] == ["upper_body", "lower_body", "dresses"]
        assert person["framing"] == "letterbox"
        assert person["detection"]["computed"] == ["masks", "pose"]
        people = person["detection"]["people"]
        assert people >= 1
        assert bool(person["warnings"]) == (people > 1)

        analysis = server.runtime.require().catalog.analyzers[0].analyze(fit_photo(photo)[0])
        for category in person["categories"]:
            expected = np.asarray(binarize(analysis.working_mask(category)))
            assert np.array_equal(stored_png(client, category, "mask"), expected), category
        assert np.array_equal(stored_png(client, "dresses", "pose"), np.asarray(analysis.pose()))

        register_garment(client, "shirt")
        tryon = {"clothingId": "shirt", "denoiseSteps": 1}
        assert client.post("/api/fitting/single-item-tryon-v2", json=tryon).status_code == 200


def test_an_uploaded_mask_overrides_the_computed_one(server: LiveServer) -> None:
    mask = Image.new("L", (768, 1024), 0)
    mask.paste(255, (100, 100, 300, 500))
    body = {"image": b64_png(demo_person()), "masks": {"lower_body": b64_png(mask)}}
    with server.client(new_user()) as client:
        person = client.put("/api/person", json=body).json()
        assert person["categories"] == ["upper_body", "lower_body", "dresses"]
        assert person["detection"]["computed"] == ["masks", "pose"]
        assert np.array_equal(stored_png(client, "lower_body", "mask"), np.asarray(mask))
        assert not np.array_equal(stored_png(client, "upper_body", "mask"), np.asarray(mask))


def test_nobody_in_the_photo_answers_422_and_stores_nothing(server: LiveServer) -> None:
    user_id = new_user()
    with server.client(user_id) as client:
        empty = Image.new("RGB", (300, 400), (128, 128, 128))
        response = client.put("/api/person", json={"image": b64_png(empty)})
        assert response.status_code == 422
        assert response.json()["error"] == "NoPersonFound"
        assert client.get("/api/person").status_code == 404
    store = server.runtime.require().loader.store
    assert not list(store.list(f"users/{user_id}/"))


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (b64_png(Image.new("RGB", (40, 300))), "too small"),
        (base64.b64encode(b"not an image").decode(), "not a readable image"),
    ],
)
def test_unusable_photos_answer_422(server: LiveServer, image: str, message: str) -> None:
    with server.client(new_user()) as client:
        response = client.put("/api/person", json={"image": image})
    assert response.status_code == 422 and message in response.json()["detail"]


def test_the_crop_framing_goes_back_into_the_photo(server: LiveServer) -> None:
    """A wide photo cropped to 3:4: the try-on in the original framing is the whole photo with
    the result pasted over the crop, the photo's own pixels elsewhere."""
    photo = Image.new("RGB", (1400, 1024), (20, 120, 40))
    photo.paste(demo_person(), (316, 0))
    with server.client(new_user()) as client:
        person = client.put("/api/person", json={"image": b64_png(photo), "framing": "crop"})
        assert person.json()["framing"] == "crop", person.text
        register_garment(client, "shirt")
        tryon = {"clothingId": "shirt", "denoiseSteps": 1, "fit": "original"}
        response = client.post(
            "/api/fitting/single-item-tryon-v2", json=tryon, headers={"Accept": "image/png"}
        )
    assert response.status_code == 200, response.text
    result = np.asarray(Image.open(io.BytesIO(response.content)))
    assert result.shape == (1024, 1400, 3)
    assert np.array_equal(result[:, :316], np.asarray(photo)[:, :316])
    assert np.array_equal(result[:, 1084:], np.asarray(photo)[:, 1084:])
    assert not np.array_equal(result[:, 316:1084], np.asarray(photo)[:, 316:1084])


def test_person_images_of_an_unregistered_category_are_404(user: tuple[httpx.Client, str]) -> None:
    client, _ = user  # registered for upper_body only, masks uploaded
    assert client.get("/api/person/images/upper_body/mask").status_code == 200
    assert client.get("/api/person/images/dresses/mask").status_code == 404
    assert client.get("/api/person/images/upper_body/photo").status_code == 422


def test_broken_preprocessing_weights_fail_the_start_naming_the_file(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    weights = tmp_path / "ckpt"
    shutil.copytree(tiny_model_dir / "ckpt", weights)
    (weights / "densepose" / "model_final_162be9.pkl").unlink()
    live = LiveServer(make_settings(tiny_model_dir, tmp_path, preprocess_path=weights))
    live.start(ready=False)
    try:
        assert live.runtime.wait_loaded(WAIT_S)
        ready = httpx.get(f"{live.url}/ready")
        assert ready.status_code == 503
        assert "densepose/model_final_162be9.pkl" in ready.json()["detail"]
    finally:
        live.stop()
