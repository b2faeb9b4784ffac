"""Person registration: a photo framed into the working frame, and per category a mask, a gray
mask and a DensePose image, stored under the person's folders with a fresh version.

The masks and the DensePose image are computed from the photo (person preprocessing, the
`analyzer`) unless the caller uploads them, in the photo's framing (they are framed like the
photo) or already 768 x 1024. Uploaded ones override computed ones; with every mask wanted and the
pose uploaded nothing is computed. Computed masks cover every category.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from PIL import Image

from vton.errors import InvalidInput
from vton.preprocess.fit import Fit, FitMode, apply_fit, fit_photo, to_rgb
from vton.preprocess.inputs import (
    MASK_FLATTENED,
    MASK_MODES,
    POSE_FLATTENED,
    POSE_MODES,
    check_companion,
    check_min_side,
    flatten_on_black,
)
from vton.preprocess.manifest import Detection, PersonManifest, new_version
from vton.store import keys
from vton.store.base import Store, put_all
from vton.store.codecs import encode_pngs
from vton.store.ids import Category, check_id

if TYPE_CHECKING:
    from vton.preprocess.body.analyze import PersonAnalysis, PersonAnalyzer

GRAY = (128, 128, 128)
IMAGE_MODES = {"human_img": "RGB", "mask": "L", "mask_gray": "RGB", "pose": "RGB"}


def binarize(mask: Image.Image) -> Image.Image:
    """0/255 at the pipeline's own threshold (value / 255 >= 0.5, src/tryon_pipeline.py L420)."""
    return mask.convert("L").point(lambda v: 255 if v >= 128 else 0)


def fit_mask(mask: Image.Image, what: str, fit: Fit) -> Image.Image:
    """A binary (0/255, mode L) mask in the working frame; outside the photo nothing is masked.
    A palette or an alpha band is flattened first (MASK_FLATTENED)."""
    mask = flatten_on_black(mask, MASK_FLATTENED, "L")
    if check_companion(mask, what, MASK_MODES, fit.original_size):
        mask = apply_fit(mask.convert("L"), fit, 0, Image.Resampling.NEAREST)
    return binarize(mask)


def fit_pose(pose: Image.Image, fit: Fit) -> Image.Image:
    pose = flatten_on_black(pose, POSE_FLATTENED, "RGB")
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
    masks: Mapping[Category | str, Image.Image] | None = None,
    pose: Image.Image | None = None,
    *,
    analyzer: PersonAnalyzer | None = None,
    framing: FitMode = "letterbox",
) -> PersonManifest:
    """Stores the person of `user_id`, replacing any earlier one. Masks and pose that are not
    given are computed by `analyzer` (InvalidInput without one; NoPersonFound when nobody is in
    the photo: then nothing is stored).

    Categories registered before but not registered now are removed: they belong to the old photo.
    """
    check_id("user_id", user_id)
    uploaded = {Category.parse(name): mask for name, mask in (masks or {}).items()}
    if len(uploaded) != len(masks or {}):
        raise InvalidInput(f"masks: a category is given twice ({', '.join(map(str, masks or {}))})")
    check_min_side(photo, "image")
    human, fit = fit_photo(photo, framing)
    analysis = None
    if not uploaded or pose is None:
        if analyzer is None:
            missing = "pose" if uploaded else ("masks and pose" if pose is None else "masks")
            raise InvalidInput(
                f"{missing}: required, person preprocessing is off on this server "
                "(VTON_PREPROCESS_PATH names no weights folder)"
            )
        analysis = analyzer.analyze(human)
    binary = {c: fit_mask(mask, f"masks.{c.value}", fit) for c, mask in uploaded.items()}
    pose_fitted = fit_pose(pose, fit) if pose is not None else None
    if analysis is not None:
        wanted = [c.value for c in Category if c not in binary]
        computed = {c: binarize(m) for c, m in analysis.working_masks(wanted).items()}
        binary = {c: binary.get(c) or computed[c.value] for c in Category}
        pose_fitted = pose_fitted or analysis.pose()
    assert pose_fitted is not None
    version = new_version()

    images: dict[str, Image.Image] = {}
    for category, mask in binary.items():
        gray = gray_out(human, mask)
        for name, image in zip(keys.PERSON_IMAGES, (human, mask, gray, pose_fitted), strict=True):
            images[keys.person_image(user_id, category, name)] = image
    if fit.mode == "crop":  # going back to the photo's framing pastes into the photo
        images[keys.person_photo(user_id)] = to_rgb(photo)
    objects = encode_pngs(images, version)
    put_all(store, objects)

    manifest = PersonManifest(
        version=version,
        categories=tuple(binary),
        fit=fit,
        detection=_detection(analysis, uploaded, pose),
    )
    store.put(keys.person_manifest(user_id), manifest.encode())  # last: now it is registered
    for category in set(Category) - set(binary):
        store.delete_prefix(keys.person_folder(user_id, category))
    if fit.mode != "crop":
        store.delete(keys.person_photo(user_id))
    return manifest


def _detection(
    analysis: PersonAnalysis | None, uploaded: Mapping[Category, Image.Image], pose: object
) -> Detection | None:
    if analysis is None:
        return None
    computed = tuple(
        name
        for name, given in (("masks", len(uploaded) == len(Category)), ("pose", pose is not None))
        if not given
    )
    return Detection(people=analysis.people, computed=computed)


def delete_person(store: Store, user_id: str) -> bool:
    """Removes the person of `user_id`; False if there was none."""
    manifest_key = keys.person_manifest(user_id)
    existed = store.exists(manifest_key)
    store.delete(manifest_key)  # first: from now on the person is not registered
    store.delete(keys.person_photo(user_id))
    for category in Category:
        existed |= store.delete_prefix(keys.person_folder(user_id, category)) > 0
    return existed
