"""Reading the preprocessing reference cases: which file applies under the installed OpenCV
(preprocess SPEC §7) and the mask comparison shared by the mask and parsing tests.

Masks: 4.8-4.9 the case folder's own files, 4.10 `variants/opencv-4.10/`, >= 4.11
`variants/opencv-4.11plus/`. Parsing: 4.10 `opencv-4.10`, 4.11-4.12 `opencv-4.11-4.12`, >= 5.0
`opencv-5.0`. A file absent from the variant folder: the case folder's own file applies.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from vton.preprocess.body.masks import upscale_mask

OPENCV = tuple(int(part) for part in cv2.__version__.split(".")[:2])


def mask_variant(version: tuple[int, ...] = OPENCV) -> str | None:
    if version >= (4, 11):
        return "opencv-4.11plus"
    return "opencv-4.10" if version == (4, 10) else None


def parsing_variant(version: tuple[int, ...] = OPENCV) -> str | None:
    if version >= (5, 0):
        return "opencv-5.0"
    if version >= (4, 11):
        return "opencv-4.11-4.12"
    return "opencv-4.10" if version == (4, 10) else None


def expected_file(case: Path, name: str, variant: str | None) -> Path:
    """`case/variants/<variant>/<name>` when it exists, else `case/<name>`."""
    if variant is not None and (candidate := case / "variants" / variant / name).is_file():
        return candidate
    return case / name


def case_folders(root: Path) -> list[Path]:
    """Every case folder (one with a case.json) under `root`; fails when there is none."""
    cases = sorted(path.parent for path in root.glob("*/case.json"))
    assert cases, f"no reference cases in {root}"
    return cases


def read_keypoints(case: Path) -> list[list[float]]:
    return json.loads((case / "keypoints.json").read_text())["pose_keypoints_2d"]


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.array(image)


def mask_mismatches(
    case: Path, stem: str, mask: Image.Image, gray: Image.Image, variant: str | None
) -> list[str]:
    """How `mask` / `gray` differ from `<stem>_mask.png`, `_mask_gray.png`, `_mask_768x1024.png`.

    mask_gray and the 768 x 1024 upscale are stored for the case's own (4.9) mask only: under a
    variant the expected gray is mask // 255 * 127 (masks/README.md), and the stored upscale is
    checked against the upscale of the case's own mask (Pillow only, version independent).
    """
    problems = []
    if mask.mode != "L" or mask.size != (384, 512) or gray.mode != "L" or gray.size != (384, 512):
        problems.append(f"{case.name} {stem}: modes {mask.mode}/{gray.mode}, sizes {mask.size}")
    mask_file = expected_file(case, f"{stem}_mask.png", variant)
    expected = read_png(mask_file)
    if mask_file.parent == case:
        expected_gray = read_png(case / f"{stem}_mask_gray.png")
    else:
        expected_gray = expected // 255 * 127
    for name, got, want in (("mask", mask, expected), ("mask_gray", gray, expected_gray)):
        if (differ := int((np.array(got) != want).sum())) != 0:
            problems.append(f"{case.name} {stem} {name} ({mask_file}): {differ} px differ")
    upscaled = case / f"{stem}_mask_768x1024.png"
    if upscaled.is_file():
        stored = read_png(upscaled)
        own = Image.fromarray(read_png(case / f"{stem}_mask.png"))
        sources = [("the case's own mask", own)]
        if mask_file.parent == case:
            sources.append(("the computed mask", mask))
        for what, source in sources:
            if not np.array_equal(np.array(upscale_mask(source)), stored):
                problems.append(f"{case.name} {stem}: upscale_mask of {what} != {upscaled.name}")
    return problems
