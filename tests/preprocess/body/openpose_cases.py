"""The OpenPose reference cases (../shared/reference/preprocess/openpose/*), found at collection
time so that every case folder, including ones added later in the same formats, is its own test."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
SHARED_DIR = Path(os.environ.get("VTON_SHARED_DIR", REPO_ROOT.parent / "shared"))
OPENPOSE_DIR = SHARED_DIR / "reference" / "preprocess" / "openpose"


def _names(required: str) -> list[str]:
    if not OPENPOSE_DIR.is_dir():
        return []
    return sorted(p.parent.name for p in OPENPOSE_DIR.glob(f"*/{required}"))


CASES = _names("raw_heatmap.npy")  # every case: raw maps and the post-processing's files
NET_CASES = _names("net_input.npy")  # the random-weights cases: photo, input tensor, network


def case_params(names: list[str]) -> list[Any]:
    """pytest params; one skipped param when the reference data is not there."""
    if names:
        return names
    skip = pytest.mark.skip(reason=f"no OpenPose cases in {OPENPOSE_DIR}")
    return [pytest.param(None, marks=skip)]


def case_dir(name: str) -> Path:
    return OPENPOSE_DIR / name


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())


def raw_maps(name: str) -> tuple[np.ndarray, np.ndarray]:
    d = case_dir(name)
    return np.load(d / "raw_paf.npy"), np.load(d / "raw_heatmap.npy")


def expected_keypoints(name: str) -> list[list[float]] | None:
    """keypoints.json's 18 [x, y], or None where the original raised (error.json)."""
    d = case_dir(name)
    if (d / "keypoints.json").is_file():
        return load_json(d / "keypoints.json")["pose_keypoints_2d"]
    assert (d / "error.json").is_file(), f"{d}: neither keypoints.json nor error.json"
    return None
