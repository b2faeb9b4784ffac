"""PersonAnalyzer: the weights folder's layout, and the concurrent analysis a GPU device uses
giving what the one-after-another analysis gives (with the tiny stand-ins, on the CPU)."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from vton.errors import CheckpointError
from vton.preprocess.body.analyze import WEIGHT_FILES, PersonAnalyzer, weight_paths
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
