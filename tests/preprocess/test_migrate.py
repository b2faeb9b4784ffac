"""Migrating a store of the system this replaces: pickles only through the restricted loader."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import pytest
import torch

from tests.helpers import random_image
from tests.preprocess.conftest import FakeTextEncoder
from vton.preprocess import ArtifactLoader, migrate_store
from vton.store import Store, keys
from vton.store.codecs import encode_json, encode_png
from vton.store.ids import Category

ROOT = "users/u1/vton-cache/"


class Touch:
    """A pickle payload that creates a file when unpickled (a stand-in for any code)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def torch_bytes(value: object) -> bytes:
    buf = io.BytesIO()
    torch.save(value, buf)
    return buf.getvalue()


def legacy_text(batch_axis: bool) -> dict[str, torch.Tensor]:
    text = FakeTextEncoder().encode_garment("legacy").as_dict()
    return {n: t[None] for n, t in text.items()} if batch_axis else text


def write_legacy_store(store: Store, marker: Path) -> None:
    """The old layout: images without versions, JSON without version, pickled text."""
    for name, mode in [("human_img", "RGB"), ("mask", "L"), ("mask_gray", "RGB"), ("pose", "RGB")]:
        image = random_image(len(name), 768, 1024, mode)
        store.put(ROOT + f"upper/{name}.png", encode_png(image))
    store.put(ROOT + "lower/mask.png", encode_png(random_image(0, 768, 1024, "L")))  # incomplete
    payloads = {
        "dict": torch_bytes(legacy_text(batch_axis=True)),
        "tuple": torch_bytes(tuple(legacy_text(batch_axis=False).values())),
        "evil": pickle.dumps({"prompt_embeds": Touch(marker)}),
        "evil-torch": torch_bytes({"prompt_embeds": Touch(marker)}),
        "plain-pickle": pickle.dumps(legacy_text(batch_axis=False)),
    }
    for clothing_id, payload in payloads.items():
        meta = {"category": "upper_body", "description": f"garment {clothing_id}"}
        store.put(ROOT + f"garments/{clothing_id}.json", encode_json(meta))
        store.put(ROOT + f"garments/{clothing_id}_img.png", encode_png(random_image(1)))
        store.put(ROOT + f"text/{clothing_id}.pkl", payload)


def test_migration_converts_and_refuses_what_is_unsafe(
    artifact_store: Store, loader: ArtifactLoader, tmp_path: Path
) -> None:
    marker = tmp_path / "executed"
    write_legacy_store(artifact_store, marker)
    assert not marker.exists()
    report = migrate_store(artifact_store, delete_pickles=True)
    assert not marker.exists(), "a pickle payload was executed"
    assert report.persons == ["u1"]
    assert report.garments == ["u1/dict", "u1/tuple"]
    refused = "\n".join(report.refused)
    assert "lower/: incomplete" in refused
    for clothing_id in ("evil", "evil-torch", "plain-pickle"):
        assert f"text/{clothing_id}.pkl: refused" in refused
    assert len(report.refused) == 4

    inputs = loader.gather("u1", ["dict", "tuple"])
    expected = FakeTextEncoder().encode_garment("legacy").as_dict()
    for item in inputs:
        assert item.person.category is Category.UPPER_BODY and item.person.fit is None
        assert all(torch.equal(item.garment.text.as_dict()[n], t) for n, t in expected.items())
    assert not artifact_store.exists(keys.legacy_text("u1", "dict"))
    assert artifact_store.exists(keys.legacy_text("u1", "evil"))

    again = migrate_store(artifact_store)
    assert (again.persons, again.garments, again.skipped) == ([], [], 3)


def test_dry_run_writes_nothing(artifact_store: Store, tmp_path: Path) -> None:
    write_legacy_store(artifact_store, tmp_path / "executed")
    before = {k: artifact_store.get(k) for k in artifact_store.list("")}
    report = migrate_store(artifact_store, dry_run=True)
    assert report.garments == ["u1/dict", "u1/tuple"]
    assert {k: artifact_store.get(k) for k in artifact_store.list("")} == before


def test_legacy_garment_json_is_refused_by_the_loader_with_a_hint(
    artifact_store: Store, loader: ArtifactLoader
) -> None:
    artifact_store.put(ROOT + "garments/c1.json", encode_json({"category": "dresses"}))
    with pytest.raises(Exception, match="vton migrate-store"):
        loader.garment_manifest("u1", "c1")
