"""The store key layout (design: "Store key layout"); every id is validated before use.

    users/{user_id}/vton-cache/person.json               person manifest (version, categories, fit)
    users/{user_id}/vton-cache/photo.png                 the original photo (crop framing only)
    users/{user_id}/vton-cache/{upper|lower|dresses}/    human_img.png, mask.png, mask_gray.png,
                                                         pose.png
    users/{user_id}/vton-cache/garments/{clothing_id}_img.png
    users/{user_id}/vton-cache/garments/{clothing_id}.json    garment manifest (category, ...)
    users/{user_id}/vton-cache/text/{clothing_id}.safetensors
    results/{user_id}/{result_hash}.png

`person.json` is the one addition to the layout of the system this replaces: the version that
every person image carries must be readable without downloading an image.
"""

from __future__ import annotations

from vton.store.ids import Category, check_id, check_result_hash

PERSON_IMAGES = ("human_img", "mask", "mask_gray", "pose")


def user_root(user_id: str) -> str:
    return f"users/{check_id('user_id', user_id)}/vton-cache/"


def person_manifest(user_id: str) -> str:
    return user_root(user_id) + "person.json"


def person_photo(user_id: str) -> str:
    """The registered original photo, kept only when the crop framing needs it to go back."""
    return user_root(user_id) + "photo.png"


def person_folder(user_id: str, category: Category) -> str:
    return f"{user_root(user_id)}{category.folder}/"


def person_image(user_id: str, category: Category, name: str) -> str:
    if name not in PERSON_IMAGES:
        raise ValueError(f"unknown person image {name!r}")
    return f"{person_folder(user_id, category)}{name}.png"


def garment_image(user_id: str, clothing_id: str) -> str:
    return f"{user_root(user_id)}garments/{check_id('clothing_id', clothing_id)}_img.png"


def garment_manifest(user_id: str, clothing_id: str) -> str:
    return f"{user_root(user_id)}garments/{check_id('clothing_id', clothing_id)}.json"


def text(user_id: str, clothing_id: str) -> str:
    return f"{user_root(user_id)}text/{check_id('clothing_id', clothing_id)}.safetensors"


def legacy_text(user_id: str, clothing_id: str) -> str:
    """Where the system this replaces kept the text tensors, pickled (read only by migration)."""
    return f"{user_root(user_id)}text/{check_id('clothing_id', clothing_id)}.pkl"


def result(user_id: str, result_hash: str) -> str:
    return f"results/{check_id('user_id', user_id)}/{check_result_hash(result_hash)}.png"
