"""Garment registration: image, text embeddings (fake encoder, and the real one on the tiny
model), manifest; checks before writes; deletion."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers import random_image
from tests.preprocess.conftest import FakeTextEncoder, RecordingStore
from vton.errors import InvalidInput
from vton.preprocess import GarmentManifest, delete_garment, register_garment
from vton.preprocess.garment import decode_text
from vton.store import LocalStore, Store, keys
from vton.store.codecs import decode_png
from vton.store.ids import Category

ROOT = "users/u1/vton-cache/"


def test_register_stores_image_text_and_manifest(
    artifact_store: Store, encoder: FakeTextEncoder
) -> None:
    manifest = register_garment(
        artifact_store, encoder, "u1", "c1", random_image(0, 500, 500), " red shirt ", "upper_body"
    )
    assert sorted(artifact_store.list("users/")) == [
        ROOT + "garments/c1.json",
        ROOT + "garments/c1_img.png",
        ROOT + "text/c1.safetensors",
    ]
    key = keys.garment_manifest("u1", "c1")
    assert GarmentManifest.decode(key, artifact_store.get(key)) == manifest
    assert (manifest.category, manifest.description) == (Category.UPPER_BODY, "red shirt")
    image, version = decode_png("k", artifact_store.get(ROOT + "garments/c1_img.png"), "RGB")
    assert image.size == (768, 1024) and version == manifest.version
    assert image.getpixel((0, 0)) == (255, 255, 255)  # square photo: white above and below
    text, version = decode_text("k", artifact_store.get(ROOT + "text/c1.safetensors"))
    assert version == manifest.version
    expected = FakeTextEncoder().encode_garment("red shirt")
    assert all(torch.equal(text.as_dict()[n], t) for n, t in expected.as_dict().items())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"description": "  "}, "description"),
        ({"description": "x" * 1001}, "description"),
        ({"category": "upper"}, None),  # folder names are accepted too
        ({"category": "shoes"}, "category"),
        ({"clothing_id": "c1/../c2"}, "clothing_id"),
        ({"clothing_id": ""}, "clothing_id"),
        ({"user_id": "u" * 65}, "user_id"),
    ],
)
def test_bad_inputs_are_refused_before_any_write(
    artifact_store: Store, encoder: FakeTextEncoder, change: dict, message: str | None
) -> None:
    args = {
        "user_id": "u1",
        "clothing_id": "c1",
        "photo": random_image(1),
        "description": "jeans",
        "category": "lower_body",
    } | change
    store = RecordingStore(artifact_store)
    if message is None:
        register_garment(store, encoder, **args)
        return
    with pytest.raises(InvalidInput, match=message):
        register_garment(store, encoder, **args)
    assert store.calls == [] and encoder.calls == []


def test_delete(artifact_store: Store, encoder: FakeTextEncoder) -> None:
    for clothing_id in ("c1", "c2"):
        register_garment(
            artifact_store, encoder, "u1", clothing_id, random_image(2), "hat", "dresses"
        )
    assert delete_garment(artifact_store, "u1", "c1") is True
    assert [k.rsplit("/", 1)[1] for k in artifact_store.list("users/")] == [
        "c2.json",
        "c2_img.png",
        "c2.safetensors",
    ]
    assert delete_garment(artifact_store, "u1", "c1") is False


def test_real_text_encoder_on_the_tiny_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    from vton.engine.checkpoint import load_model
    from vton.engine.text import PromptEncoder

    store = LocalStore(tmp_path)
    encoder = PromptEncoder(load_model(tiny_model_dir))
    register_garment(store, encoder, "u1", "c1", random_image(3), "blue dress", "dresses")
    text, _ = decode_text("k", store.get(ROOT + "text/c1.safetensors"))
    expected = encoder.encode_garment("blue dress")
    assert all(torch.allclose(text.as_dict()[n], t) for n, t in expected.as_dict().items())
    assert text.prompt_embeds.ndim == 2 and text.pooled_prompt_embeds.ndim == 1
