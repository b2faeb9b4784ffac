"""The DensePose pose image exactly as IDM-VTON's demo makes it (apply_net `show ... dp_segm`).

Reproduces detectron2's `DefaultPredictor` on the 384x512 person image (BGR array,
ResizeShortestEdge 800/1333 by PIL bilinear on the uint8 array), `detector_postprocess`, the
chart result of every instance (part labels 0..24 at the `int()`-truncated box size: argmax of the
bilinearly resized fine segmentation, zeroed where the resized coarse segmentation is background)
and `DensePoseResultsFineSegmentationVisualizer` as IDM-VTON modified it (PARULA colours of
`uint8(label * 255/24)`, label 0 black, alpha 1), then the demo's 768x1024 bicubic resize.
(The visualiser's label resize, bilinear where NEAREST was meant, never runs: the labels are
already at the int box size, and a box whose int width or height is 0 is not painted.)

Deliberate deviations:
- `render_pose` paints, by default, one chosen instance on black: the LARGEST box, or in
  registration the instance that matches the person OpenPose chose for the masks
  (`matching_instance`). The original (`original=True`, reproduced exactly) zeroes the whole
  canvas before each instance, so only the last, lowest-scoring instance above 0.8 survives,
  often a fragment of the person; and with no instance it returns the grey-scale photo, where
  the default raises `NoPersonFound`.
- U/V charts are not computed: the pose image uses only the part labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.ops import box_iou

from vton.errors import InvalidInput, NoPersonFound
from vton.preprocess.body.densepose_net import DensePoseNet, Trace, clip_boxes, record

INPUT_SIZE = (384, 512)  # what IDM-VTON feeds DensePose (width, height)
POSE_SIZE = (768, 1024)
MIN_SIZE_TEST = 800
MAX_SIZE_TEST = 1333
NUM_LABELS = 24

# applyColorMap(uint8(float32(label) * (255/24)), PARULA) for labels 0..24, as RGB; label 0 is
# drawn black (background), not its colour.
_SCALED = (np.arange(NUM_LABELS + 1, dtype=np.float32) * np.float32(255.0 / NUM_LABELS)).clip(
    0, 255
)
_PALETTE = cv2.applyColorMap(_SCALED.astype(np.uint8)[:, None], cv2.COLORMAP_PARULA)[:, 0, ::-1]
_PALETTE[0] = 0


@dataclass
class DensePoseResult:
    """Detections on the 384x512 image, in detection order (descending score)."""

    boxes: np.ndarray  # (n, 4) float32 xyxy
    scores: np.ndarray  # (n,) float32
    int_boxes: list[tuple[int, int, int, int]]  # int() of x, y, w, h (w or h may be 0)
    labels: list[np.ndarray]  # (max(h, 1), max(w, 1)) uint8 part labels 0..24 per instance
    chosen: int | None  # the instance painted (largest box; see matching_instance); None: none


class DensePose:
    """Runs a DensePoseNet on a 384x512 RGB person image."""

    def __init__(
        self, net: DensePoseNet, device: torch.device | str, dtype: torch.dtype = torch.float32
    ) -> None:
        self.device = torch.device(device)
        self.net = net.to(device=self.device, dtype=dtype).eval()

    def __call__(self, image: Image.Image, trace: Trace = None) -> DensePoseResult:
        """`trace`, when given, receives the intermediates under the reference's names."""
        _check_input(image)
        resized = resize_shortest_edge(np.asarray(image)[:, :, ::-1])
        chw = torch.from_numpy(np.ascontiguousarray(resized.transpose(2, 0, 1)))
        record(trace, "input.resized_bgr", chw[None])
        with torch.inference_mode():
            det = self.net(chw.to(self.device).float(), trace)
            scale_x = INPUT_SIZE[0] / resized.shape[1]
            scale_y = INPUT_SIZE[1] / resized.shape[0]
            boxes = det.boxes.clone()
            boxes[:, 0::2] *= scale_x
            boxes[:, 1::2] *= scale_y
            boxes = clip_boxes(boxes, (INPUT_SIZE[1], INPUT_SIZE[0]))
            keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            boxes, scores = boxes[keep], det.scores[keep]
            record(trace, "det.final.boxes_xyxy", boxes)
            record(trace, "det.final.scores", scores)
            record(trace, "det.final.classes", det.classes[keep])
            xywh = boxes.clone()
            xywh[:, 2:] -= xywh[:, :2]
            int_boxes = [(x, y, w, h) for x, y, w, h in xywh.long().tolist()]
            labels = [
                _chart_labels(coarse, fine, box)
                for coarse, fine, box in zip(
                    det.coarse_segm[keep], det.fine_segm[keep], int_boxes, strict=True
                )
            ]
        for i, lab in enumerate(labels):
            record(trace, f"chart.{i}.labels", torch.from_numpy(lab))
        areas = (xywh[:, 2] * xywh[:, 3]).cpu()
        return DensePoseResult(
            boxes=boxes.cpu().numpy(),
            scores=scores.cpu().numpy(),
            int_boxes=int_boxes,
            labels=labels,
            chosen=int(areas.argmax()) if len(areas) else None,
        )


def matching_instance(result: DensePoseResult, box: tuple[float, float, float, float]) -> int:
    """The instance whose box overlaps `box` (x0, y0, x1, y1, 384x512 frame) most, by IoU; the
    chosen one when none overlaps it. Registration paints the person OpenPose chose for the masks
    this way: with several people the largest box can be a detection spanning two of them."""
    if result.chosen is None:
        raise NoPersonFound("DensePose found no person in the photo")
    ious = box_iou(torch.from_numpy(result.boxes).float(), torch.tensor([box]).float())[:, 0]
    return int(ious.argmax()) if float(ious.max()) > 0 else result.chosen


def painted_instance(result: DensePoseResult, *, original: bool = False) -> int | None:
    """The instance the pose image shows: the chosen (largest) one, or with `original=True` the
    last one (None when there is none)."""
    if original:
        return len(result.labels) - 1 if result.labels else None
    return result.chosen


def label_map(result: DensePoseResult, *, original: bool = False) -> np.ndarray:
    """The painted instance's part labels (0..24) in the 384x512 frame, 0 elsewhere; raises
    NoPersonFound when there is no instance."""
    index = painted_instance(result, original=original)
    if index is None:
        raise NoPersonFound("DensePose found no person in the photo")
    labels = np.zeros((INPUT_SIZE[1], INPUT_SIZE[0]), np.uint8)
    x, y, w, h = result.int_boxes[index]
    if w > 0 and h > 0:
        labels[y : y + h, x : x + w] = result.labels[index]
    return labels


def render_pose(
    result: DensePoseResult, image: Image.Image, *, original: bool = False
) -> Image.Image:
    """The 384x512 RGB DensePose image: the chosen instance's part colours on black.

    `original=True` reproduces apply_net's dp_segm: only the last instance, or the grey-scale
    `image` when there is none.
    """
    _check_input(image)
    if original and not result.labels:
        grey = cv2.cvtColor(np.asarray(image)[:, :, ::-1], cv2.COLOR_BGR2GRAY)
        return Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2))
    return Image.fromarray(_PALETTE[label_map(result, original=original)])


def pose_image(rgb: Image.Image) -> Image.Image:
    """The pose image the try-on receives: the 384x512 rendering resized bicubically to 768x1024."""
    return rgb.resize(POSE_SIZE, Image.Resampling.BICUBIC)


def resize_shortest_edge(bgr: np.ndarray) -> np.ndarray:
    """detectron2's test-time ResizeShortestEdge(800, 1333): PIL bilinear on the uint8 array."""
    h, w = bgr.shape[:2]
    scale = MIN_SIZE_TEST * 1.0 / min(h, w)
    newh, neww = (MIN_SIZE_TEST * 1.0, scale * w) if h < w else (scale * h, MIN_SIZE_TEST * 1.0)
    if max(newh, neww) > MAX_SIZE_TEST:
        scale = MAX_SIZE_TEST * 1.0 / max(newh, neww)
        newh, neww = newh * scale, neww * scale
    size = (int(neww + 0.5), int(newh + 0.5))
    return np.asarray(
        Image.fromarray(np.ascontiguousarray(bgr)).resize(size, Image.Resampling.BILINEAR)
    )


def _chart_labels(
    coarse: torch.Tensor, fine: torch.Tensor, int_box: tuple[int, int, int, int]
) -> np.ndarray:
    h, w = max(int_box[3], 1), max(int_box[2], 1)
    fg = F.interpolate(coarse[None], (h, w), mode="bilinear", align_corners=False).argmax(dim=1)
    part = F.interpolate(fine[None], (h, w), mode="bilinear", align_corners=False).argmax(dim=1)
    return (part * (fg > 0).long())[0].to(torch.uint8).cpu().numpy()


def _check_input(image: Image.Image) -> None:
    if not isinstance(image, Image.Image) or image.mode != "RGB" or image.size != INPUT_SIZE:
        raise InvalidInput(
            f"DensePose expects a {INPUT_SIZE[0]}x{INPUT_SIZE[1]} RGB PIL image, got "
            f"{getattr(image, 'mode', type(image).__name__)} {getattr(image, 'size', '')}"
        )
