"""PersonAnalyzer: the weights folder's layout, the concurrent analysis a GPU device uses giving
what the one-after-another analysis gives (with the tiny stand-ins, on the CPU), and DensePose
painting the person whose keypoints make the masks."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from vton.errors import CheckpointError
from vton.preprocess.body.analyze import (
    WEIGHT_FILES,
    PersonAnalyzer,
    _paint_the_chosen_person,
    weight_paths,
)
from vton.preprocess.body.densepose import DensePoseResult, label_map, matching_instance
from vton.preprocess.body.openpose import Keypoints
from vton.preprocess.body.standins import demo_person


def test_every_missing_weight_file_is_named(tiny_model_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(tiny_model_dir / "ckpt", tmp_path / "ckpt")
    for name in ("openpose", "parsing_lip"):
        (tmp_path / "ckpt" / WEIGHT_FILES[name]).unlink()
    with pytest.raises(CheckpointError) as error:
        weight_paths(tmp_path / "ckpt")
    message = str(error.value)
    assert WEIGHT_FILES["openpose"] in message and WEIGHT_FILES["parsing_lip"] in message
    assert WEIGHT_FILES["densepose"] not in message


def test_the_concurrent_analysis_equals_the_sequential_one(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    analyzer = PersonAnalyzer.load(tiny_model_dir / "ckpt", "cpu", tmp_path / "cache")
    sequential = analyzer.analyze(demo_person())
    analyzer._pool = ThreadPoolExecutor(3)  # what a CUDA device's analyzer runs with
    concurrent = analyzer.analyze(demo_person())
    assert concurrent.keypoints == sequential.keypoints
    assert np.array_equal(concurrent.parse, sequential.parse)
    assert concurrent.pose().tobytes() == sequential.pose().tobytes()
    assert set(concurrent.timings_ms) == {"openpose", "parsing", "densepose", "analysis"}
    assert concurrent.timings_ms["analysis"] >= max(
        concurrent.timings_ms[m] for m in ("openpose", "parsing", "densepose")
    )


def two_people_found() -> DensePoseResult:
    """Two people side by side, and a larger detection spanning both (seen with the reference
    weights on two copies of its person): the largest box is neither person."""
    boxes = np.array(
        [[29.3, 50.5, 175.6, 465.8], [210.3, 61.9, 342.8, 446.2], [147.6, 69.7, 311.4, 484.9]],
        np.float32,
    )
    int_boxes = [(int(x0), int(y0), int(x1 - x0), int(y1 - y0)) for x0, y0, x1, y1 in boxes]
    labels = [np.full((h, w), 1 + i, np.uint8) for i, (_, _, w, h) in enumerate(int_boxes)]
    scores = np.array([0.99, 0.98, 0.92], np.float32)
    return DensePoseResult(boxes, scores, int_boxes, labels, chosen=2)


def test_the_painted_person_is_the_one_whose_keypoints_make_the_masks() -> None:
    right_person = [(0.0, 0.0)] * 4 + [(x, y) for x in (230.0, 320.0) for y in (90.0, 250.0, 420.0)]
    keypoints = Keypoints(points=right_person + [(0.0, 0.0)] * 8, people=2, person=1)
    chosen = _paint_the_chosen_person(two_people_found(), keypoints)
    assert chosen.chosen == 1 and matching_instance(chosen, (230, 90, 320, 420)) == 1
    assert set(np.unique(label_map(chosen))) == {0, 2}  # only the right person is painted
    nobody_found = Keypoints(points=[(0.0, 0.0)] * 18, people=1)
    assert _paint_the_chosen_person(two_people_found(), nobody_found).chosen == 2  # the largest
    far_away = matching_instance(two_people_found(), (370.0, 500.0, 383.0, 511.0))
    assert far_away == 2  # no overlap with any detection: the largest
