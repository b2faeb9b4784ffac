"""Person registration: what is stored, how inputs are checked, replacement and deletion; from a
photo alone with the tiny preprocessing stand-ins."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.preprocess.conftest import RecordingStore, person_inputs
from vton.errors import InvalidInput, NoPersonFound
from vton.preprocess import PersonManifest, delete_person, register_person
from vton.preprocess.body.analyze import PersonAnalyzer
from vton.preprocess.body.standins import demo_person
from vton.preprocess.person import GRAY, binarize
from vton.store import Store, keys
from vton.store.codecs import decode_png
from vton.store.ids import Category

ROOT = "users/u1/vton-cache/"


def stored(store: Store, key: str, mode: str) -> tuple[np.ndarray, str | None]:
    image, version = decode_png(key, store.get(key), mode)
    return np.asarray(image), version


def test_register_stores_the_layout_with_one_version(artifact_store: Store) -> None:
    photo, masks, pose = person_inputs(0)
    manifest = register_person(artifact_store, "u1", photo, masks, pose)
    assert sorted(artifact_store.list("users/")) == [
        ROOT + "person.json",
        ROOT + "upper/human_img.png",
        ROOT + "upper/mask.png",
        ROOT + "upper/mask_gray.png",
        ROOT + "upper/pose.png",
    ]
    key = keys.person_manifest("u1")
    assert PersonManifest.decode(key, artifact_store.get(key)) == manifest
    assert manifest.categories == (Category.UPPER_BODY,)
    assert manifest.fit is not None and manifest.fit.original_size == (300, 450)
    for name in ("human_img", "mask", "mask_gray", "pose"):
        _, version = stored(artifact_store, ROOT + f"upper/{name}.png", "RGB")
        assert version == manifest.version


def test_images_are_fitted_binary_and_greyed(artifact_store: Store) -> None:
    photo, masks, pose = person_inputs(1)
    register_person(artifact_store, "u1", photo, masks, pose)
    human, _ = stored(artifact_store, ROOT + "upper/human_img.png", "RGB")
    mask, _ = stored(artifact_store, ROOT + "upper/mask.png", "L")
    gray, _ = stored(artifact_store, ROOT + "upper/mask_gray.png", "RGB")
    pose_img, _ = stored(artifact_store, ROOT + "upper/pose.png", "RGB")
    assert mask.shape == (1024, 768)
    assert human.shape == gray.shape == pose_img.shape == (1024, 768, 3)
    # 300x450 scales by 2.2756 to 683x1024, centred: 42 columns of padding on the left.
    assert (human[:, :42] == 255).all() and (pose_img[:, :42] == 0).all()
    assert set(np.unique(mask)) == {0, 255}
    assert (mask[:, :42] == 0).all() and (mask[:500, 50:700] == 255).all()
    masked = mask == 255
    assert (gray[masked] == GRAY).all()
    assert (gray[~masked] == human[~masked]).all()


def test_masks_of_the_working_size_are_used_as_they_are(artifact_store: Store) -> None:
    photo, _, pose = person_inputs(2)
    mask = Image.new("L", (768, 1024), 0)
    mask.paste(200, (0, 0, 10, 10))
    register_person(artifact_store, "u1", photo, {"dresses": mask}, pose)
    stored_mask, _ = stored(artifact_store, ROOT + "dresses/mask.png", "L")
    assert stored_mask[:10, :10].min() == 255 and stored_mask.sum() == 255 * 100


def test_palette_and_alpha_masks_and_an_rgba_pose_are_converted(artifact_store: Store) -> None:
    photo, masks, pose = person_inputs(4)
    register_person(artifact_store, "u1", photo, masks, pose)
    expected = {
        name: stored(artifact_store, ROOT + f"upper/{name}.png", mode)[0]
        for name, mode in (("mask", "L"), ("pose", "RGB"))
    }
    gray = masks["upper_body"]
    transparent = Image.new("LA", gray.size, (255, 0))  # white, but transparent: not masked
    transparent.paste(gray.convert("LA"), mask=gray)
    rgba_pose = pose.convert("RGBA")
    rgba_pose.putalpha(255)
    for mask in (gray.convert("P"), transparent, gray.convert("1")):
        register_person(artifact_store, "u1", photo, {"upper_body": mask}, rgba_pose)
        assert (stored(artifact_store, ROOT + "upper/mask.png", "L")[0] == expected["mask"]).all()
        assert (stored(artifact_store, ROOT + "upper/pose.png", "RGB")[0] == expected["pose"]).all()
    see_through = pose.convert("RGBA")
    see_through.putalpha(0)  # all transparent: background, black
    register_person(artifact_store, "u1", photo, masks, see_through)
    assert stored(artifact_store, ROOT + "upper/pose.png", "RGB")[0].max() == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"masks": {"upper_body": Image.new("RGB", (300, 450))}}, "masks.upper_body: mode"),
        ({"masks": {"upper_body": Image.new("RGBA", (300, 450))}}, "masks.upper_body: mode"),
        ({"masks": {"upper_body": Image.new("L", (301, 450))}}, "masks.upper_body: size"),
        ({"masks": {"hats": Image.new("L", (300, 450))}}, "category"),
        ({"masks": {}}, "masks: required, person preprocessing is off"),
        ({"masks": None, "pose": None}, "masks and pose: required"),
        ({"pose": None}, "pose: required, person preprocessing is off"),
        ({"pose": Image.new("L", (300, 450))}, "pose: mode"),
        ({"pose": Image.new("RGB", (768, 1023))}, "pose: size"),
        ({"user_id": "../u1"}, "user_id"),
        ({"user_id": "ü"}, "user_id"),
    ],
)
def test_bad_inputs_are_refused_before_any_write(
    artifact_store: Store, change: dict, message: str
) -> None:
    photo, masks, pose = person_inputs(3)
    args = {"user_id": "u1", "photo": photo, "masks": masks, "pose": pose} | change
    store = RecordingStore(artifact_store)
    with pytest.raises(InvalidInput, match=message):
        register_person(store, **args)
    assert store.calls == []


def test_re_registration_replaces_and_drops_categories_not_given(artifact_store: Store) -> None:
    photo, masks, pose = person_inputs(4)
    first = register_person(
        artifact_store, "u1", photo, {**masks, "dresses": masks["upper_body"]}, pose
    )
    second = register_person(artifact_store, "u1", photo, masks, pose)
    assert second.version != first.version
    assert not list(artifact_store.list(ROOT + "dresses/"))
    assert stored(artifact_store, ROOT + "upper/mask.png", "L")[1] == second.version


def test_delete(artifact_store: Store) -> None:
    photo, masks, pose = person_inputs(5)
    register_person(artifact_store, "u1", photo, masks, pose)
    register_person(artifact_store, "u2", photo, masks, pose)
    assert delete_person(artifact_store, "u1") is True
    assert not list(artifact_store.list("users/u1/"))
    assert list(artifact_store.list("users/u2/"))
    assert delete_person(artifact_store, "u1") is False


# -- registration from a photo alone, and the crop framing's photo -----------------------------


@pytest.fixture(scope="module")
def analyzer(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> PersonAnalyzer:
    cache = tmp_path_factory.mktemp("weights-cache")
    return PersonAnalyzer.load(tiny_model_dir / "ckpt", "cpu", cache)


def test_a_photo_alone_registers_every_category(
    artifact_store: Store, analyzer: PersonAnalyzer
) -> None:
    manifest = register_person(artifact_store, "u1", demo_person(), analyzer=analyzer)
    assert manifest.categories == tuple(Category)
    assert manifest.detection is not None and manifest.detection.computed == ("masks", "pose")
    analysis = analyzer.analyze(demo_person())
    assert manifest.detection.people == analysis.people >= 1
    for category in Category:
        mask, _ = stored(artifact_store, ROOT + f"{category.folder}/mask.png", "L")
        assert np.array_equal(mask, np.asarray(binarize(analysis.working_mask(category.value))))
    pose, _ = stored(artifact_store, ROOT + "lower/pose.png", "RGB")
    assert np.array_equal(pose, np.asarray(analysis.pose()))


def test_an_uploaded_pose_is_kept_and_only_masks_are_computed(
    artifact_store: Store, analyzer: PersonAnalyzer
) -> None:
    pose = Image.new("RGB", (768, 1024), (1, 2, 3))
    manifest = register_person(artifact_store, "u1", demo_person(), pose=pose, analyzer=analyzer)
    assert manifest.detection is not None and manifest.detection.computed == ("masks",)
    assert (stored(artifact_store, ROOT + "dresses/pose.png", "RGB")[0] == (1, 2, 3)).all()


def test_nobody_in_the_photo_stores_nothing(
    artifact_store: Store, analyzer: PersonAnalyzer
) -> None:
    store = RecordingStore(artifact_store)
    with pytest.raises(NoPersonFound):
        register_person(store, "u1", Image.new("RGB", (300, 400), (90, 90, 90)), analyzer=analyzer)
    assert store.calls == []


def test_the_crop_framing_keeps_the_photo_until_it_is_not_needed(artifact_store: Store) -> None:
    photo, masks, pose = person_inputs(6, size=(600, 450))
    crop = register_person(artifact_store, "u1", photo, masks, pose, framing="crop")
    assert crop.fit is not None and crop.fit.mode == "crop"
    kept, version = stored(artifact_store, keys.person_photo("u1"), "RGB")
    assert version == crop.version and np.array_equal(kept, np.asarray(photo))

    register_person(artifact_store, "u1", photo, masks, pose)  # letterbox: no photo kept
    assert not artifact_store.exists(keys.person_photo("u1"))
    register_person(artifact_store, "u1", photo, masks, pose, framing="crop")
    assert delete_person(artifact_store, "u1")
    assert not list(artifact_store.list("users/u1/"))
