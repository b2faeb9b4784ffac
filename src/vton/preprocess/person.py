"""Person registration: a photo fitted to the working frame, and per category a mask, a gray mask
and a DensePose image, stored under the person's folders with a fresh version.

Until the pose/parsing/DensePose models exist the caller supplies the masks and the DensePose
image, either in the photo's framing (they are fitted like the photo) or already 768 x 1024.
"""

from __future__ import annotations

from collections.abc import Mapping

from PIL import Image

from vton.errors import InvalidInput
from vton.preprocess.fit import Fit, apply_fit, fit_photo
from vton.preprocess.inputs import MASK_MODES, POSE_MODES, check_companion
from vton.preprocess.manifest import PersonManifest, new_version
from vton.store import keys
from vton.store.base import Store, put_all
from vton.store.codecs import encode_png
from vton.store.ids import Category, check_id

GRAY = (128, 128, 128)
IMAGE_MODES = {"human_img": "RGB", "mask": "L", "mask_gray": "RGB", "pose": "RGB"}


def fit_mask(mask: Image.Image, what: str, fit: Fit) -> Image.Image:
    """A binary (0/255, mode L) mask in the working frame; outside the photo nothing is masked."""
    if check_companion(mask, what, MASK_MODES, fit.original_size):
        mask = apply_fit(mask.convert("L"), fit, 0, Image.Resampling.NEAREST)
    return mask.convert("L").point(lambda v: 255 if v >= 128 else 0)


def fit_pose(pose: Image.Image, fit: Fit) -> Image.Image:
    if check_companion(pose, "pose", POSE_MODES, fit.original_size):
        pose = apply_fit(pose, fit, 0)
    return pose


def gray_out(person: Image.Image, mask: Image.Image) -> Image.Image:
    """The person image with the masked area replaced by mid gray (the area to repaint)."""
    return Image.composite(Image.new("RGB", person.size, GRAY), person, mask)


def register_person(
    store: Store,
    user_id: str,
    photo: Image.Image,
    masks: Mapping[Category | str, Image.Image],
    pose: Image.Image,
) -> PersonManifest:
    """Stores the person of `user_id` for the categories in `masks`, replacing any earlier one.

    Categories registered before but not given now are removed: they belong to the old photo.
    """
    check_id("user_id", user_id)
    if not masks:
        raise InvalidInput("masks: give the mask of at least one category")
    by_category = {Category.parse(name): mask for name, mask in masks.items()}
    if len(by_category) != len(masks):
        raise InvalidInput(f"masks: a category is given twice ({', '.join(map(str, masks))})")
    human, fit = fit_photo(photo)
    pose_fitted = fit_pose(pose, fit)
    version = new_version()

    human_png, pose_png = encode_png(human, version), encode_png(pose_fitted, version)
    objects: dict[str, bytes] = {}
    for category, mask in by_category.items():
        binary = fit_mask(mask, f"mask for {category.value}", fit)
        objects[keys.person_image(user_id, category, "human_img")] = human_png
        objects[keys.person_image(user_id, category, "mask")] = encode_png(binary, version)
        gray = encode_png(gray_out(human, binary), version)
        objects[keys.person_image(user_id, category, "mask_gray")] = gray
        objects[keys.person_image(user_id, category, "pose")] = pose_png
    put_all(store, objects)

    manifest = PersonManifest(version=version, categories=tuple(by_category), fit=fit)
    store.put(keys.person_manifest(user_id), manifest.encode())  # last: now it is registered
    for category in set(Category) - set(by_category):
        store.delete_prefix(keys.person_folder(user_id, category))
    return manifest


def delete_person(store: Store, user_id: str) -> bool:
    """Removes the person of `user_id`; False if there was none."""
    manifest_key = keys.person_manifest(user_id)
    existed = store.exists(manifest_key)
    store.delete(manifest_key)  # first: from now on the person is not registered
    for category in Category:
        existed |= store.delete_prefix(keys.person_folder(user_id, category)) > 0
    return existed
