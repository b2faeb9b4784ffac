"""DensePose weights: the restricted unpickler, the strict key check, the converter and its cache,
and the tiny random stand-in (width_divisor 8) that `vton make-tiny-model` writes."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from safetensors.torch import load_file

from vton.errors import CheckpointError, NoPersonFound
from vton.preprocess.body import densepose_weights
from vton.preprocess.body.densepose import DensePose, pose_image, render_pose
from vton.preprocess.body.densepose_net import DensePoseNet, cell_anchors
from vton.preprocess.body.densepose_weights import (
    convert_densepose_pickle,
    load_densepose_net,
    random_densepose_state,
    read_model_zoo_pickle,
    write_model_zoo_pickle,
)

TINY = 8
STEM = "backbone.bottom_up.stem.conv1.weight"


@pytest.fixture(scope="module")
def tiny_state() -> dict[str, torch.Tensor]:
    return random_densepose_state(TINY, seed=0)


@pytest.fixture
def tiny_pickle(tiny_state, tmp_path: Path) -> Path:
    path = tmp_path / "user" / "model_final_162be9.pkl"
    path.parent.mkdir()
    write_model_zoo_pickle(path, tiny_state)
    return path


def person_photo() -> Image.Image:
    """A plain synthetic person: head, torso, arms and legs on a noisy gradient."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(60, 200, 512)[:, None, None] + rng.normal(0, 6, (512, 384, 3))
    image = Image.fromarray(np.clip(ramp, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse((162, 40, 222, 110), fill=(224, 180, 150))
    draw.rectangle((142, 110, 242, 290), fill=(200, 30, 40))
    draw.rectangle((112, 115, 140, 280), fill=(224, 180, 150))
    draw.rectangle((244, 115, 272, 280), fill=(224, 180, 150))
    draw.rectangle((150, 290, 188, 480), fill=(40, 50, 120))
    draw.rectangle((196, 290, 234, 480), fill=(40, 50, 120))
    return image


def write_pickle(path: Path, model: dict, protocol: int = 2) -> Path:
    with open(path, "wb") as f:
        pickle.dump({"model": model, "__author__": "test"}, f, protocol=protocol)
    return path


def as_arrays(state: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in state.items()}


def test_state_dict_names_are_detectrons(densepose_reference_dir: Path) -> None:
    recipe = json.loads((densepose_reference_dir / "weights/recipe.json").read_text())["keys"]
    with torch.device("meta"):
        full, tiny = DensePoseNet().state_dict(), DensePoseNet(TINY).state_dict()
    assert len(full) == 335
    assert {k: list(v.shape) for k, v in full.items()} == {k: s["shape"] for k, s in recipe.items()}
    assert tiny.keys() == full.keys()
    assert tiny[STEM].shape == (64 // TINY, 3, 7, 7)
    assert tiny["roi_heads.densepose_head.body_conv_fcn1.weight"].shape == (64, 32, 3, 3)


def test_layout_mock_reads_through_the_restricted_unpickler(densepose_reference_dir: Path) -> None:
    """Protocol 2, numpy-1.x global names, `_codecs.encode` bytes: the model-zoo layout."""
    mock = densepose_reference_dir / "pkl_layout_mock.pkl"
    arrays = read_model_zoo_pickle(mock)
    assert list(arrays) == [STEM, "roi_heads.box_predictor.cls_score.bias"]
    assert all(a.dtype == np.float32 for a in arrays.values())
    assert arrays[STEM].shape == (2, 3, 1, 1)
    np.testing.assert_array_equal(arrays[STEM].ravel(), np.arange(6) / 8)
    np.testing.assert_array_equal(arrays["roi_heads.box_predictor.cls_score.bias"], [0.5, -0.25])
    with pytest.raises(CheckpointError, match=r"pkl_layout_mock\.pkl: .*missing key"):
        convert_densepose_pickle(mock, mock.parent / "never-written.safetensors")


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_pickle_round_trip(tiny_state, tmp_path: Path, protocol: int) -> None:
    """numpy 2 writes `numpy._core` names (protocol 2-4: _reconstruct, 5: _frombuffer)."""
    src = write_pickle(tmp_path / "w.pkl", as_arrays(tiny_state), protocol)
    arrays = read_model_zoo_pickle(src)
    assert arrays.keys() == tiny_state.keys()
    assert all(np.array_equal(arrays[k], v.numpy()) for k, v in tiny_state.items())
    convert_densepose_pickle(src, tmp_path / "w.safetensors")
    converted = load_file(tmp_path / "w.safetensors")
    assert converted.keys() == tiny_state.keys()
    assert all(torch.equal(converted[k], v) for k, v in tiny_state.items())


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda m: m.update({"roi_heads.mask_head.mask_fcn1.weight": m[STEM]}), "mask_fcn1"),
        (lambda m: m.pop("roi_heads.decoder.p5.4.bias"), "roi_heads.decoder.p5.4.bias"),
        (lambda m: m.update({"roi_heads.box_head.fc2.bias": np.zeros(7, np.float32)}), "fc2.bias"),
        (lambda m: m.update({"roi_heads.box_head.fc2.bias": np.zeros(128)}), "fc2.bias"),
        (lambda m: m.update({STEM: np.zeros((5, 3, 7, 7), np.float32)}), STEM),
    ],
    ids=["extra", "missing", "shape", "float64", "stem-width"],
)
def test_wrong_keys_refused_by_name(tiny_state, tmp_path: Path, edit, named: str) -> None:
    model = as_arrays(tiny_state)
    edit(model)
    src = write_pickle(tmp_path / "bad.pkl", model)
    with pytest.raises(CheckpointError, match=rf"bad\.pkl.*{named}"):
        convert_densepose_pickle(src, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


def old_extras() -> dict[str, np.ndarray]:
    extras = {
        "pixel_mean": np.array([103.53, 116.28, 123.675], np.float32).reshape(3, 1, 1),
        "pixel_std": np.ones((3, 1, 1), np.float32),
    }
    for i, size in enumerate((32, 64, 128, 256, 512)):
        extras[f"proposal_generator.anchor_generator.cell_anchors.{i}"] = cell_anchors(size).numpy()
    return extras


def test_old_checkpoint_extras_accepted_and_dropped(tiny_state, tmp_path: Path) -> None:
    src = write_pickle(tmp_path / "old.pkl", {**as_arrays(tiny_state), **old_extras()})
    convert_densepose_pickle(src, tmp_path / "old.safetensors")
    assert load_file(tmp_path / "old.safetensors").keys() == tiny_state.keys()


@pytest.mark.parametrize(
    "key", ["pixel_mean", "proposal_generator.anchor_generator.cell_anchors.2"]
)
def test_old_extras_with_other_values_refused(tiny_state, tmp_path: Path, key: str) -> None:
    extras = old_extras()
    extras[key] = extras[key][::-1].copy()  # e.g. an RGB mean
    src = write_pickle(tmp_path / "odd.pkl", {**as_arrays(tiny_state), **extras})
    with pytest.raises(CheckpointError, match=rf"odd\.pkl: {key} is"):
        convert_densepose_pickle(src, tmp_path / "odd.safetensors")


class Payload:
    """Pickles as a call of `function(argument)`; the standard unpickler would make that call."""

    def __init__(self, function, argument: str) -> None:
        self.function, self.argument = function, argument

    def __reduce__(self):
        return self.function, (self.argument,)


@pytest.mark.parametrize(
    ("function", "argument", "protocol", "named"),
    [
        (os.system, "touch {marker}", 2, f"{os.system.__module__}.system"),
        (eval, "open({marker!r}, 'w')", 4, "builtins.eval"),
    ],
    ids=["os.system", "builtins.eval"],
)
def test_foreign_global_refused_without_running_it(
    tmp_path: Path, function, argument: str, protocol: int, named: str
) -> None:
    marker = str(tmp_path / "pwned")
    src = write_pickle(
        tmp_path / "evil.pkl", {STEM: Payload(function, argument.format(marker=marker))}, protocol
    )
    with pytest.raises(CheckpointError, match=rf"evil\.pkl: refused the pickled global {named}"):
        read_model_zoo_pickle(src)
    with pytest.raises(CheckpointError, match=named):
        load_densepose_net(src, tmp_path / "cache")
    assert not Path(marker).exists()
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_not_a_pickle_refused(tmp_path: Path) -> None:
    src = tmp_path / "truncated.pkl"
    src.write_bytes(pickle.dumps({"model": {}})[:-3])
    with pytest.raises(CheckpointError, match=r"truncated\.pkl: cannot read the pickle"):
        read_model_zoo_pickle(src)
    src.write_bytes(pickle.dumps({"weights": {}}))
    with pytest.raises(CheckpointError, match="no 'model' dict"):
        read_model_zoo_pickle(src)


def test_pickle_converted_once_into_the_cache(
    tiny_state, tiny_pickle: Path, tmp_path: Path, monkeypatch
) -> None:
    cache = tmp_path / "cache"
    user_files = sorted(tiny_pickle.parent.iterdir())
    net = load_densepose_net(tiny_pickle, cache)
    digest = hashlib.sha256(tiny_pickle.read_bytes()).hexdigest()[:16]
    cached = cache / f"densepose-{digest}.safetensors"
    assert sorted(cache.iterdir()) == [cached]
    assert sorted(tiny_pickle.parent.iterdir()) == user_files  # the user's folder untouched
    assert net.width_divisor == TINY and not net.training
    assert all(torch.equal(v, tiny_state[k]) for k, v in net.state_dict().items())
    stamp = cached.stat().st_mtime_ns

    def no_conversion(*_args) -> None:
        raise AssertionError("converted twice")

    monkeypatch.setattr(densepose_weights, "convert_densepose_pickle", no_conversion)
    again = load_densepose_net(tiny_pickle, cache)
    assert cached.stat().st_mtime_ns == stamp and sorted(cache.iterdir()) == [cached]
    assert all(torch.equal(v, tiny_state[k]) for k, v in again.state_dict().items())
    direct = load_densepose_net(cached, tmp_path / "unused-cache")
    assert not (tmp_path / "unused-cache").exists()
    assert all(torch.equal(v, tiny_state[k]) for k, v in direct.state_dict().items())


def test_missing_or_foreign_weight_files_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"absent\.pkl: DensePose weights not found"):
        load_densepose_net(tmp_path / "absent.pkl", tmp_path)
    (tmp_path / "weights.pth").write_bytes(b"\0")
    with pytest.raises(CheckpointError, match=r"weights\.pth: expected .*\.pkl or \.safetensors"):
        load_densepose_net(tmp_path / "weights.pth", tmp_path)


def test_random_state_is_seeded(tiny_state) -> None:
    same = random_densepose_state(TINY, seed=0)
    other = random_densepose_state(TINY, seed=1)
    assert all(torch.equal(same[k], v) for k, v in tiny_state.items())
    assert not torch.equal(other[STEM], tiny_state[STEM])


def test_tiny_stand_in_finds_the_synthetic_person(tiny_pickle: Path, tmp_path: Path) -> None:
    net = load_densepose_net(tiny_pickle, tmp_path / "cache")
    photo = person_photo()
    result = DensePose(net, "cpu")(photo)
    assert len(result.scores) >= 1 and float(result.scores.max()) > 0.8
    assert result.chosen is not None
    _, y, w, h = result.int_boxes[result.chosen]
    assert result.labels[result.chosen].shape == (max(h, 1), max(w, 1))
    rendered = render_pose(result, photo)
    painted = np.asarray(rendered).any(axis=-1)
    assert painted.any() and not painted[:y].any() and not painted[y + h :].any()
    assert pose_image(rendered).size == (768, 1024)


def test_tiny_stand_in_without_person_bias_finds_nobody(tiny_state, tmp_path: Path) -> None:
    state = dict(tiny_state)
    state["roi_heads.box_predictor.cls_score.bias"] = torch.tensor([-4.0, 0.0])
    net = DensePoseNet(TINY)
    net.load_state_dict(state)
    photo = person_photo()
    result = DensePose(net, "cpu")(photo)
    assert len(result.scores) == 0 and result.chosen is None
    with pytest.raises(NoPersonFound):
        render_pose(result, photo)


def test_bfloat16_runs(tiny_state) -> None:
    """bf16 (fp16 alike, too slow on a CPU to test here) keeps boxes, scores, pooling in fp32."""
    results = []
    for run_dtype in (torch.float32, torch.bfloat16):
        net = DensePoseNet(TINY)
        net.load_state_dict(tiny_state)
        results.append(DensePose(net, "cpu", run_dtype)(person_photo()))
    full, half = results
    assert len(half.scores) >= 1 and half.boxes.dtype == np.float32
    assert np.isfinite(half.boxes).all() and float(half.scores.max()) > 0.8
    assert abs(float(half.scores.max()) - float(full.scores.max())) < 0.01
