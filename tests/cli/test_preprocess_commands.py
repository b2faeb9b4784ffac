"""`vton preprocess person|mask|densepose`, `vton convert-weights densepose` and
`vton register-person` from a photo alone (in process, with the tiny stand-ins)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from tests.preprocess.body.reference_files import case_folders, mask_mismatches, mask_variant
from vton.cli import app
from vton.preprocess.body.densepose_weights import (
    random_densepose_state,
    write_model_zoo_pickle,
)
from vton.preprocess.body.standins import demo_person
from vton.store import LocalStore
from vton.store.ids import Category

CATEGORIES = [c.value for c in Category]


def vton(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "person.jpg"
    demo_person().save(path, quality=95)
    return path


@pytest.fixture(autouse=True)
def weights_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VTON_WEIGHTS_CACHE_DIR", str(tmp_path / "weights-cache"))
    return tmp_path / "weights-cache"


def test_preprocess_person_writes_every_intermediate(
    tiny_model_dir: Path, photo: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = vton("preprocess", "person", photo, "--out", out, "--weights", tiny_model_dir / "ckpt")
    assert result.exit_code == 0, result.output
    assert Image.open(out / "person_768x1024.png").size == (768, 1024)
    points = json.loads((out / "keypoints.json").read_text())["pose_keypoints_2d"]
    assert len(points) == 18 and all(len(p) == 2 for p in points)
    parse = Image.open(out / "parse.png")
    assert parse.mode == "P" and parse.size == (384, 512) and np.array(parse).max() <= 18
    for model_type in ("hd", "dc"):
        for category in CATEGORIES:
            mask = np.array(Image.open(out / f"{model_type}_{category}_mask.png"))
            gray = np.array(Image.open(out / f"{model_type}_{category}_mask_gray.png"))
            assert set(np.unique(mask)) <= {0, 255} and mask.any()
            assert np.array_equal(gray, mask // 255 * 127)
        assert Image.open(out / f"hd_{category}_mask_768x1024.png").size == (768, 1024)
    assert not list(out.glob("dc_*_768x1024.png"))
    assert Image.open(out / "densepose.png").size == (768, 1024)
    found = json.loads((out / "densepose.json").read_text())
    labels = np.array(Image.open(out / "densepose_labels.png"))
    assert labels.shape == (512, 384) and labels.max() <= 24 and labels.any()
    x0, y0, x1, y1 = (int(v) for v in found["instances"][found["chosen"]]["box"])
    inside = np.zeros_like(labels, dtype=bool)
    inside[y0 : y1 + 1, x0 : x1 + 1] = True
    assert not labels[~inside].any()


def test_preprocess_mask_matches_every_reference_case(
    preprocess_reference_dir: Path, tmp_path: Path
) -> None:
    for case in case_folders(preprocess_reference_dir / "masks"):
        out = tmp_path / case.name
        args = ["--parse", case / "parse.png", "--keypoints", case / "keypoints.json"]
        result = vton("preprocess", "mask", *args, "--out", out, "--original")
        assert result.exit_code == 0, result.output
        for model_type in ("hd", "dc"):
            for category in CATEGORIES:
                stem = f"{model_type}_{category}"
                mask, gray = (Image.open(out / f"{stem}_mask{s}.png") for s in ("", "_gray"))
                assert not mask_mismatches(case, stem, mask, gray, mask_variant())


def test_preprocess_mask_takes_categories_and_model_types(tmp_path: Path) -> None:
    parse = np.zeros((512, 384), np.uint8)
    parse[100:400, 100:300] = 4
    Image.fromarray(parse).save(tmp_path / "parse.png")
    (tmp_path / "kp.json").write_text(json.dumps({"pose_keypoints_2d": [[0, 0]] * 18}))
    args = ["--parse", tmp_path / "parse.png", "--keypoints", tmp_path / "kp.json"]
    out = tmp_path / "out"
    result = vton("preprocess", "mask", *args, "--out", out, "--category", "dresses")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "dc_dresses_mask.png",
        "dc_dresses_mask_gray.png",
        "hd_dresses_mask.png",
        "hd_dresses_mask_768x1024.png",
        "hd_dresses_mask_gray.png",
    ]
    result = vton("preprocess", "mask", *args, "--out", out, "--model-type", "xl")
    assert result.exit_code == 1 and "model_type" in result.output
    (tmp_path / "kp.json").write_text("{}")
    result = vton("preprocess", "mask", *args, "--out", out)
    assert result.exit_code == 1 and "keypoints.json" in result.output


def test_preprocess_densepose_alone(tiny_model_dir: Path, photo: Path, tmp_path: Path) -> None:
    out = tmp_path / "dp"
    args = ["--out", out, "--weights", tiny_model_dir / "ckpt"]
    result = vton("preprocess", "densepose", photo, *args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "densepose.json",
        "densepose.png",
        "densepose_labels.png",
    ]
    found = json.loads((out / "densepose.json").read_text())
    areas = [(x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in (i["box"] for i in found["instances"])]
    assert found["chosen"] == int(np.argmax(areas))
    result = vton("preprocess", "densepose", photo, *args, "--original")
    assert json.loads((out / "densepose.json").read_text())["chosen"] == len(areas) - 1


def test_preprocess_says_which_weight_file_is_missing(photo: Path, tmp_path: Path) -> None:
    result = vton("preprocess", "person", photo, "--out", tmp_path, "--weights", tmp_path)
    assert result.exit_code == 1
    assert "openpose/ckpts/body_pose_model.pth" in result.output


def test_convert_weights_densepose(tmp_path: Path, densepose_reference_dir: Path) -> None:
    state = random_densepose_state(8, seed=1)
    write_model_zoo_pickle(tmp_path / "tiny.pkl", state)
    target = tmp_path / "tiny.safetensors"
    result = vton("convert-weights", "densepose", tmp_path / "tiny.pkl", target)
    assert result.exit_code == 0, result.output
    converted = load_file(target)
    assert converted.keys() == state.keys()
    assert all(np.array_equal(converted[k].numpy(), v.numpy()) for k, v in state.items())

    mock = densepose_reference_dir / "pkl_layout_mock.pkl"
    result = vton("convert-weights", "densepose", mock, tmp_path / "mock.safetensors")
    assert result.exit_code == 1 and "missing" in result.output
    assert not (tmp_path / "mock.safetensors").exists()


def test_register_person_from_a_photo_alone(
    tiny_model_dir: Path, photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VTON_STORE", f"file://{tmp_path / 'store'}")
    monkeypatch.setenv("VTON_MODEL_PATH", str(tiny_model_dir))
    result = vton("register-person", "u1", "--photo", photo)
    assert result.exit_code == 0, result.output
    assert "(upper_body, lower_body, dresses," in result.output
    assert "computed masks/pose" in result.output
    store = LocalStore(tmp_path / "store")
    for category in Category:
        assert store.exists(f"users/u1/vton-cache/{category.folder}/pose.png")
