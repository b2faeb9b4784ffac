"""A person photo's analysis on one device: keypoints, parse map, DensePose, and from them the
masks, as IDM-VTON computes them (SPEC §0) from the 768 x 1024 working image.

    analyzer = PersonAnalyzer.load(weights_dir, "cuda:0", cache_dir)   # the IDM-VTON ckpt/ layout
    analysis = analyzer.analyze(human_img)           # raises NoPersonFound when nobody is there
    mask, mask_gray = analysis.mask("upper_body")    # 384 x 512, as get_mask_location returns them

The weights folder is IDM-VTON's own `ckpt/` layout (WEIGHT_FILES), so a user points at the folder
they already have. `original=True` reproduces the original's defects everywhere (for comparison);
the default fixes them (each module's docstring lists what it changes).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image

from vton.errors import CheckpointError, InvalidInput
from vton.preprocess.body.densepose import (
    DensePose,
    DensePoseResult,
    matching_instance,
    pose_image,
    render_pose,
)
from vton.preprocess.body.densepose_weights import load_densepose_net
from vton.preprocess.body.masks import mask_location, upscale_mask
from vton.preprocess.body.openpose import BodyPose, Keypoints
from vton.preprocess.body.openpose_net import load_body_pose_net
from vton.preprocess.body.parsing import HumanParser

log = logging.getLogger(__name__)
T = TypeVar("T")

WEIGHT_FILES = {
    "openpose": "openpose/ckpts/body_pose_model.pth",
    "parsing_atr": "humanparsing/parsing_atr.onnx",
    "parsing_lip": "humanparsing/parsing_lip.onnx",
    "densepose": "densepose/model_final_162be9.pkl",
}
MODEL_SIZE = (384, 512)
"""What every preprocessing model sees: the working image resized (bicubic), SPEC §0."""
WORKING_SIZE = (768, 1024)


def weight_paths(root: Path, names: tuple[str, ...] = tuple(WEIGHT_FILES)) -> dict[str, Path]:
    """The weight files `names` under `root`; CheckpointError naming every one that is missing."""
    paths = {name: Path(root) / WEIGHT_FILES[name] for name in names}
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if missing:
        raise CheckpointError(
            f"person preprocessing weights missing in {root}: {', '.join(missing)} "
            "(IDM-VTON's ckpt/ layout)"
        )
    return paths


def model_image(human_img: Image.Image) -> Image.Image:
    """The 384 x 512 RGB image every model sees, from the 768 x 1024 working image."""
    if human_img.size != WORKING_SIZE:
        raise InvalidInput(f"image: {human_img.size} is not the working size {WORKING_SIZE}")
    return human_img.convert("RGB").resize(MODEL_SIZE, Image.Resampling.BICUBIC)


def load_densepose(root: Path, device: str, weights_cache_dir: Path) -> DensePose:
    path = weight_paths(root, ("densepose",))["densepose"]
    torch_device = torch.device(device)
    return DensePose(load_densepose_net(path, weights_cache_dir, torch_device), torch_device)


@dataclass(frozen=True)
class PersonAnalysis:
    """What the models read off one working image (all in the 384 x 512 model frame)."""

    image: Image.Image
    keypoints: Keypoints
    parse: np.ndarray
    densepose: DensePoseResult
    pose_384: Image.Image
    original: bool
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def people(self) -> int:
        return self.keypoints.people

    def mask(self, category: str, model_type: str = "hd") -> tuple[Image.Image, Image.Image]:
        """`get_mask_location(model_type, category)`: mask 0/255 and mask_gray 0/127."""
        points = self.keypoints.points
        return mask_location(model_type, category, self.parse, points, original=self.original)

    def working_mask(self, category: str) -> Image.Image:
        """The hd mask as the pipeline receives it: 768 x 1024, bicubic (not binary)."""
        return upscale_mask(self.mask(category)[0])

    def working_masks(self, categories: Sequence[str]) -> dict[str, Image.Image]:
        """working_mask of each category, side by side (OpenCV and Pillow release the GIL)."""
        with ThreadPoolExecutor(max(1, len(categories))) as pool:
            return dict(zip(categories, pool.map(self.working_mask, categories), strict=True))

    def pose(self) -> Image.Image:
        """The DensePose image as the pipeline receives it: 768 x 1024 RGB."""
        return pose_image(self.pose_384)


class PersonAnalyzer:
    """OpenPose, SCHP parsing and DensePose on one device; one analysis at a time."""

    def __init__(
        self, body_pose: BodyPose, parser: HumanParser, densepose: DensePose, device: str
    ) -> None:
        self.body_pose = body_pose
        self.parser = parser
        self.densepose = densepose
        self.device = device
        self._lock = threading.Lock()
        on_gpu = torch.device(device).type == "cuda"
        self._pool = ThreadPoolExecutor(3, thread_name_prefix="vton-analyze") if on_gpu else None

    @classmethod
    def load(cls, root: Path, device: str, weights_cache_dir: Path) -> PersonAnalyzer:
        paths = weight_paths(root)
        torch_device = torch.device(device)
        return cls(
            BodyPose(load_body_pose_net(paths["openpose"], torch_device), torch_device),
            HumanParser(paths["parsing_atr"], paths["parsing_lip"], torch_device),
            load_densepose(root, device, weights_cache_dir),
            device,
        )

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def analyze(self, human_img: Image.Image, *, original: bool = False) -> PersonAnalysis:
        """The analysis of a working-frame (768 x 1024) RGB image. Raises NoPersonFound.

        On a GPU the three models run at once, so one's CPU work (OpenPose's map resizing,
        parsing's warps and argmax) overlaps the others' GPU work; on a CPU they would only contend
        for the same cores, and run one after another. `timings_ms` holds each model's own time
        and the analysis' wall time ("analysis")."""
        image = model_image(human_img)
        timings: dict[str, float] = {}
        models: dict[str, Callable[[], Any]] = {
            "openpose": partial(self.body_pose, image, original=original),
            "parsing": partial(self.parser, image),
            "densepose": partial(self.densepose, image),
        }
        with self._lock, _timed(timings, "analysis"):
            if self._pool is None:
                done: dict[str, Any] = {
                    name: _timed_call(timings, name, run) for name, run in models.items()
                }
            else:
                futures = {
                    name: self._pool.submit(_timed_call, timings, name, run)
                    for name, run in models.items()
                }
                done = {name: future.result() for name, future in futures.items()}
        keypoints, parse, found = done["openpose"], done["parsing"], done["densepose"]
        found = _paint_the_chosen_person(found, keypoints)
        pose_384 = render_pose(found, image, original=original)
        log.info(
            "person analysed device=%s people=%d densepose_instances=%d %s",
            self.device,
            keypoints.people,
            len(found.scores),
            " ".join(f"{phase}_ms={ms:.0f}" for phase, ms in timings.items()),
        )
        return PersonAnalysis(image, keypoints, parse, found, pose_384, original, timings)


def _paint_the_chosen_person(found: DensePoseResult, keypoints: Keypoints) -> DensePoseResult:
    """DensePose's result set to paint the person whose keypoints make the masks (the box of the
    found keypoints), not merely the largest detection."""
    found_points = [(x, y) for x, y in keypoints.points if (x, y) != (0, 0)]
    if not found_points or found.chosen is None:
        return found
    xs, ys = zip(*found_points, strict=True)
    return replace(found, chosen=matching_instance(found, (min(xs), min(ys), max(xs), max(ys))))


def _timed_call(timings: dict[str, float], name: str, run: Callable[[], T]) -> T:
    with _timed(timings, name):
        return run()


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    timings[name] = (time.perf_counter() - started) * 1000.0
