"""Ids are checked before they become keys; the keys are exactly the design's layout."""

from __future__ import annotations

import uuid

import pytest

from vton.errors import InvalidInput
from vton.store import keys
from vton.store.ids import Category, check_id

BAD_IDS = [
    "",
    "a/b",
    "/",
    "..",
    "../x",
    ".hidden",
    "a.b",
    "x" * 65,
    "ünïcode",
    "a b",
    "a\x00",
    None,
    7,
]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_bad_ids_are_refused(bad: object) -> None:
    with pytest.raises(InvalidInput, match="user_id"):
        check_id("user_id", bad)
    with pytest.raises(InvalidInput):
        keys.garment_image("u1", bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        keys.person_manifest(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "good", [str(uuid.uuid4()), uuid.uuid4().hex, "user_42", "A-b_c", "x" * 64]
)
def test_uuids_and_slugs_are_accepted(good: str) -> None:
    assert check_id("user_id", good) == good


def test_key_layout() -> None:
    root = "users/u1/vton-cache/"
    assert keys.person_image("u1", Category.UPPER_BODY, "human_img") == root + "upper/human_img.png"
    assert keys.person_image("u1", Category.LOWER_BODY, "mask") == root + "lower/mask.png"
    assert keys.person_image("u1", Category.DRESSES, "mask_gray") == root + "dresses/mask_gray.png"
    assert keys.person_image("u1", Category.UPPER_BODY, "pose") == root + "upper/pose.png"
    assert keys.person_manifest("u1") == root + "person.json"
    assert keys.garment_image("u1", "c7") == root + "garments/c7_img.png"
    assert keys.garment_manifest("u1", "c7") == root + "garments/c7.json"
    assert keys.text("u1", "c7") == root + "text/c7.safetensors"
    assert keys.legacy_text("u1", "c7") == root + "text/c7.pkl"
    assert keys.result("u1", "ab" * 16) == f"results/u1/{'ab' * 16}.png"
    with pytest.raises(InvalidInput):
        keys.result("u1", "../../x")


def test_categories_accept_api_and_folder_names() -> None:
    assert Category.parse("upper_body") is Category.UPPER_BODY
    assert Category.parse("lower") is Category.LOWER_BODY
    assert [c.folder for c in Category] == ["upper", "lower", "dresses"]
    with pytest.raises(InvalidInput, match="category"):
        Category.parse("hats")
