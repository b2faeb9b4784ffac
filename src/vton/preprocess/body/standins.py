"""Tiny stand-ins for the person preprocessing weights, written in the real formats and in
IDM-VTON's `ckpt/` layout, so the embedded default registers a person from a photo alone.

They prove the plumbing, not the models: OpenPose and DensePose carry seeded random weights at an
eighth of every hidden width (their keypoints and part labels are noise; the DensePose box
classifier favours "person", so every photo yields detections), and the SCHP parsers classify
colours (`parsing_standin`), so the demo person drawn in DEMO_COLOURS parses plausibly.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from vton.preprocess.body.analyze import WEIGHT_FILES
from vton.preprocess.body.densepose_weights import random_densepose_state, write_model_zoo_pickle
from vton.preprocess.body.openpose_net import random_body_pose_state, save_body_pose_checkpoint
from vton.preprocess.body.parsing_standin import DEMO_COLOURS, write_centroid_parser

WIDTH_DIVISOR = 8
OPENPOSE_SEED = 20261126
"""Finds people on the demo photo (not every seed does: random keypoint maps can find nobody)."""
DENSEPOSE_SEED = 0


def write_standins(root: Path) -> Path:
    """Writes every stand-in under `root` (IDM-VTON's ckpt/ layout); returns `root`."""
    paths = {name: Path(root) / relative for name, relative in WEIGHT_FILES.items()}
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    openpose = random_body_pose_state(WIDTH_DIVISOR, OPENPOSE_SEED)
    save_body_pose_checkpoint(paths["openpose"], openpose)
    write_centroid_parser(paths["parsing_atr"], "atr")
    write_centroid_parser(paths["parsing_lip"], "lip")
    densepose = random_densepose_state(WIDTH_DIVISOR, DENSEPOSE_SEED)
    write_model_zoo_pickle(paths["densepose"], densepose)
    return Path(root)


def demo_person() -> Image.Image:
    """A 768 x 1024 person drawn in DEMO_COLOURS (parse label -> colour), facing the viewer."""
    colour = DEMO_COLOURS
    person = Image.new("RGB", (768, 1024), colour[0])
    draw = ImageDraw.Draw(person)
    parts = [  # back to front; the person's right side is the image's left
        (15, (250, 250, 304, 600)),  # right arm
        (14, (464, 250, 518, 600)),  # left arm
        (13, (300, 600, 380, 930)),  # right leg
        (12, (388, 600, 468, 930)),  # left leg
        (10, (290, 930, 380, 980)),  # right shoe
        (9, (388, 930, 478, 980)),  # left shoe
        (6, (294, 560, 474, 760)),  # pants
        (18, (354, 200, 414, 250)),  # neck
        (4, (290, 240, 478, 580)),  # upper clothes
    ]
    for label, box in parts:
        draw.rectangle(box, fill=colour[label])
    draw.ellipse((319, 60, 449, 160), fill=colour[2])  # hair
    draw.ellipse((324, 80, 444, 220), fill=colour[11])  # face
    return person
