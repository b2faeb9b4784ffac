"""The inpainting mask from a parse map and keypoints: IDM-VTON's `get_mask_location` (SPEC §4).

Source: gradio_demo/utils_mask.py (IDM-VTON 0d5f3ec), `get_mask_location`, `hole_fill`,
`refine_mask`, `extend_arm_mask`.

    mask, mask_gray = mask_location("hd", "upper_body", parse, keypoints)   # 384 x 512, mode L
    pipeline_mask = upscale_mask(mask)                                      # 768 x 1024, bicubic

The float32 sums and logical operations of the original are written as boolean masks; the
dilations run on 0/1 uint8 images, which gives the same result as the original's float32 ones.
Reproduced as the original does it: one mask region only (`refine_mask` keeps the largest
contour), arm width 60 (hd) / 45 (dc), arm lines through Pillow with joint="curve".

Deliberate deviations (default; `original=True` reproduces the original):
* (a) The arm line's points are truncated to integers without the original's `astype(np.uint16)`,
  which wraps a negative coordinate (a raised arm's extended wrist) to 65536 + v and draws the
  band down to the image bottom. Non-negative coordinates are drawn identically.
* (b) An arm whose shoulder or elbow is missing ([0, 0], i.e. x <= 1 and y <= 1, the original's
  test for a missing wrist) is taken from the parse map, as the original does for a missing
  wrist; the original draws the line (and the shoulder arc) from the image corner.
Also: unknown model types and categories raise InvalidInput (the original: ValueError and
NotImplementedError); the keypoints are the list of 18 [x, y] rather than OpenPose's dict.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw

from vton.errors import InvalidInput

MASK_SIZE = (384, 512)
"""(width, height) of the parse map and of the masks."""
WORKING_SIZE = (768, 1024)
ARM_WIDTH = {"hd": 60, "dc": 45}
CATEGORIES = ("upper_body", "lower_body", "dresses")
WRIST_EXTENSION = 1.2

HEAD = (1, 3, 11)  # hat, sunglasses, face
FIXED = (9, 10, 1, 3, 16)  # shoes, hat, sunglasses, bag
GARMENT = {"upper_body": (4, 7), "lower_body": (6, 12, 13, 5), "dresses": (7, 4, 5, 6)}
FIXED_EXTRA = {"upper_body": (5, 6), "lower_body": (4, 14, 15), "dresses": ()}
NECK = 18
# (shoulder, elbow, wrist) keypoint indices, parse label, whether the line runs wrist -> shoulder
ARMS = (((2, 3, 4), 15, False), ((5, 6, 7), 14, True))

_KERNEL = np.ones((5, 5), np.uint8)


def mask_location(
    model_type: str,
    category: str,
    parse: np.ndarray | Image.Image,
    keypoints: Sequence[Sequence[float]],
    *,
    original: bool = False,
) -> tuple[Image.Image, Image.Image]:
    """`get_mask_location(model_type, category, parse, {"pose_keypoints_2d": keypoints})`.

    Returns (mask, mask_gray): 384 x 512 mode L, 0/255 and 0/127 (255/127 = inpaint).
    """
    if model_type not in ARM_WIDTH:
        raise InvalidInput(f"model_type: {model_type!r} is not one of {', '.join(ARM_WIDTH)}")
    if category not in GARMENT:
        raise InvalidInput(f"category: {category!r} is not one of {', '.join(CATEGORIES)}")
    labels = _parse_array(parse)
    points = _keypoint_array(keypoints)

    head = np.isin(labels, HEAD)
    fixed = np.isin(labels, FIXED + FIXED_EXTRA[category])
    keep = (labels == 0) | ~fixed
    garment = np.isin(labels, GARMENT[category])
    if category != "lower_body":
        width = ARM_WIDTH[model_type]
        arm_images = []
        for joints, label, reverse in ARMS:
            parsed = labels == label
            arm = _arm_image(parsed, points[list(joints)], width, reverse, original=original)
            fixed |= parsed & ~arm  # the hands
            arm_images.append(arm)
    fixed |= head
    garment = _dilate(garment, 5)
    if category != "lower_body":
        garment |= _dilate(labels == NECK, 1) & ~head
        garment |= _dilate(arm_images[0] | arm_images[1], 4)
    inpaint = ~((keep & ~garment) | fixed)
    image = np.pad(np.where(inpaint, 255, 0).astype(np.uint8)[1:-1, 1:-1], 1)  # border cleared
    region = _largest_region(fill_holes(image))
    on = (region // 255).astype(np.uint8)
    return Image.fromarray(on * 255), Image.fromarray(on * 127)


def upscale_mask(mask: Image.Image) -> Image.Image:
    """The mask as the pipeline receives it: `mask.resize((768, 1024))`, Pillow bicubic."""
    return mask.resize(WORKING_SIZE, Image.Resampling.BICUBIC)


def _parse_array(parse: np.ndarray | Image.Image) -> np.ndarray:
    """The label map, resized NEAREST to 384 x 512 as the original does, as (512, 384) uint8."""
    if isinstance(parse, np.ndarray):
        if parse.ndim != 2 or parse.size == 0 or parse.min() < 0 or parse.max() > 255:
            raise InvalidInput(f"parse: a 2-D label map with values 0..255, got {parse.shape}")
        parse = Image.fromarray(parse.astype(np.uint8))
    if not isinstance(parse, Image.Image) or parse.mode not in ("P", "L"):
        got = parse.mode if isinstance(parse, Image.Image) else type(parse).__name__
        raise InvalidInput(f"parse: a label image of mode P or L, got {got}")
    return np.array(parse.resize(MASK_SIZE, Image.Resampling.NEAREST))


def _keypoint_array(keypoints: Sequence[Sequence[float]]) -> np.ndarray:
    """OpenPose-18 [x, y] pixel coordinates of the 384 x 512 image, as (N, 2) float64."""
    try:
        points = np.asarray(keypoints, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"keypoints: not a list of [x, y] pairs: {exc}") from exc
    if points.ndim != 2 or points.shape[1] != 2 or len(points) < 8:
        raise InvalidInput(f"keypoints: expected 18 [x, y] pairs, got shape {points.shape}")
    return points


def _missing(point: np.ndarray) -> bool:
    """The original's test for an undetected joint (OpenPose writes [0, 0])."""
    return bool(point[0] <= 1.0 and point[1] <= 1.0)


def _arm_image(
    parsed: np.ndarray, joints: np.ndarray, width: int, reverse: bool, *, original: bool
) -> np.ndarray:
    """The arm region to repaint: a thick line shoulder-elbow-extended wrist plus a shoulder disc,
    or the parsed arm when the wrist (fixed: or any joint) is missing."""
    shoulder, elbow, wrist = joints
    absent = _missing(wrist) if original else any(_missing(p) for p in joints)
    if absent:
        return parsed
    wrist = elbow + WRIST_EXTENSION * (wrist - elbow)
    line = np.concatenate([wrist, elbow, shoulder] if reverse else [shoulder, elbow, wrist])
    coords = np.trunc(line).astype(np.int64)
    if original:
        coords %= 1 << 16  # astype(np.uint16) on x86-64: truncate, then wrap negatives
    canvas = Image.new("L", MASK_SIZE)
    draw = ImageDraw.Draw(canvas)
    draw.line(coords.tolist(), "white", width, "curve")
    r = width // 2
    x, y = float(shoulder[0]), float(shoulder[1])
    draw.arc([x - r, y - r, x + r, y + r], 0, 360, "white", width // 2)
    return np.asarray(canvas) > 0


def _dilate(mask: np.ndarray, iterations: int) -> np.ndarray:
    """cv2.dilate with the original's 5 x 5 kernel, on a boolean mask."""
    return cv2.dilate(mask.astype(np.uint8), _KERNEL, iterations=iterations) > 0


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """hole_fill: the 0/255 mask plus every 0-region not 4-connected to (0, 0).

    parsing_api's version; utils_mask's clears the 1-px border first (mask_location does that).
    """
    outside = mask.copy()
    cv2.floodFill(outside, np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), np.uint8), (0, 0), 255)
    return cv2.bitwise_or(mask, cv2.bitwise_not(outside))


def _largest_region(image: np.ndarray) -> np.ndarray:
    """utils_mask.refine_mask: only the contour of largest |area| (first on ties), filled."""
    contours, _ = cv2.findContours(image, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_TC89_L1)
    region = np.zeros_like(image)
    if contours:
        areas = [abs(cv2.contourArea(c, True)) for c in contours]
        cv2.drawContours(region, contours, areas.index(max(areas)), color=255, thickness=-1)
    return region
