"""DensePose against detectron2 + IDM-VTON's apply_net, stage by stage, on every reference case.

The reference weights are made once per module from the shared recipe (make_weights.py), written
as a model-zoo pickle and loaded through the converter and its cache, as the service would. Each
case runs once; its intermediates are reduced to the reference's summaries right away. Tolerances
and the near-tie exceptions are the reference README's ("How to check a re-implementation").
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from scipy.ndimage import binary_dilation
from torchvision.ops import box_iou

from vton.errors import InvalidInput, NoPersonFound
from vton.preprocess.body.densepose import DensePose, DensePoseResult, pose_image, render_pose
from vton.preprocess.body.densepose_net import DensePoseNet
from vton.preprocess.body.densepose_weights import (
    load_densepose_net,
    read_model_zoo_pickle,
    write_model_zoo_pickle,
)

# The README's colour table (label -> RGB), an oracle independent of the implementation's palette.
README_COLOURS = [
    (0, 0, 0), (37, 60, 163), (20, 80, 194), (4, 97, 223), (8, 110, 221), (14, 122, 216),
    (20, 132, 212), (15, 144, 208), (11, 156, 203), (6, 166, 198), (22, 173, 185),
    (38, 179, 172), (55, 185, 159), (86, 187, 144), (114, 189, 130), (145, 191, 116),
    (170, 189, 105), (192, 188, 96), (216, 186, 86), (228, 192, 74), (240, 199, 60),
    (252, 206, 46), (251, 220, 36), (250, 235, 25), (249, 251, 14),
]  # fmt: skip
SUMMED = {"chsum": (2, 3), "rowsum": (1, 3), "colsum": (1, 2)}
EXACT = ("input.resized_bgr.", "box.pooler_level", "box.kept_proposal_index", "chart.")
BOX_ROWS = ("box.pooler_level", "box.pooled", "box.head_fc2", "box.cls_logits",
            "box.softmax_scores", "box.bbox_deltas", "box.decoded_boxes")  # fmt: skip


@dataclass
class CaseRun:
    name: str
    meta: dict
    reference: dict[str, torch.Tensor]
    candidate: dict[str, tuple[torch.Tensor, float]]  # key -> (value, absolute tolerance)
    proposal_iou: torch.Tensor  # best IoU of each reference proposal's candidate twin
    proposal_twin: torch.Tensor  # index of that twin among the candidate's proposals
    num_proposals: int  # the candidate's
    result: DensePoseResult
    image: Image.Image
    resized_sha256: str


def load_make_weights(reference: Path):
    spec = importlib.util.spec_from_file_location("make_weights", reference / "make_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reference_state(densepose_reference_dir: Path) -> dict[str, torch.Tensor]:
    """The recipe's weights (335 tensors), checked against recipe.json's content_sha256."""
    make_weights = load_make_weights(densepose_reference_dir)
    recipe = json.loads((densepose_reference_dir / "weights/recipe.json").read_text())
    overrides = load_file(densepose_reference_dir / "weights/overrides.safetensors")
    state = make_weights.build(recipe, overrides)
    assert make_weights.content_sha256(state) == recipe["content_sha256"]
    return state


@pytest.fixture(scope="module")
def reference_pickle(reference_state, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("user-weights") / "model_final_162be9.pkl"
    write_model_zoo_pickle(path, reference_state)
    return path


@pytest.fixture(scope="module")
def reference_net(reference_pickle, tmp_path_factory) -> DensePoseNet:
    return load_densepose_net(reference_pickle, tmp_path_factory.mktemp("cache"), "cpu")


@pytest.fixture(scope="module")
def runs(reference_net, densepose_reference_dir: Path) -> list[CaseRun]:
    cases = sorted(p for p in densepose_reference_dir.glob("case*") if p.is_dir())
    assert cases, f"no case folders in {densepose_reference_dir}"
    densepose = DensePose(reference_net, "cpu")
    return [run_case(densepose, case) for case in cases]


def run_case(densepose: DensePose, case: Path) -> CaseRun:
    reference = load_file(case / "tensors.safetensors")
    image = Image.open(case / "dp_input_rgb_384x512.png").convert("RGB")
    trace: dict[str, torch.Tensor] = {}
    result = densepose(image, trace)
    resized = trace["input.resized_bgr"][0].permute(1, 2, 0).contiguous().numpy()
    # proposals may change order: every box.* row is compared through its IoU twin
    iou = box_iou(reference["rpn.proposal_boxes"], trace["rpn.proposal_boxes"])
    best_iou, twin = iou.max(dim=1)
    num_proposals = len(trace["rpn.proposal_boxes"])
    for key in BOX_ROWS:
        trace[key] = trace[key][twin]
    inverse = torch.full((len(twin),), -1, dtype=torch.int64)
    inverse[twin] = torch.arange(len(twin))
    trace["box.kept_proposal_index"] = inverse[trace["box.kept_proposal_index"]]
    trace["rpn.proposal_boxes"] = trace["rpn.proposal_boxes"][twin]
    trace["rpn.proposal_objectness_logits"] = trace["rpn.proposal_objectness_logits"][twin]
    candidate = {
        key: summary(trace, key)
        for key in reference
        if ".uv." not in key  # U/V charts are not computed (unused by the pose image)
    }
    return CaseRun(
        name=case.name,
        meta=json.loads((case / "meta.json").read_text()),
        reference=reference,
        candidate=candidate,
        proposal_iou=best_iou,
        proposal_twin=twin,
        num_proposals=num_proposals,
        result=result,
        image=image,
        resized_sha256=hashlib.sha256(resized.tobytes()).hexdigest(),
    )


def summary(trace: dict[str, torch.Tensor], key: str) -> tuple[torch.Tensor, float]:
    """The candidate's value for a reference key, and the README's tolerance for it."""
    if key in trace:
        value = trace[key]
        return value, tolerance(key, value)
    name, kind = key.rsplit(".", 1)
    t = trace[name]
    wide = t.long() if t.dtype == torch.uint8 else t.double()
    max_abs = float(t.float().abs().max()) if t.numel() else 0.0
    if kind in SUMMED:
        dims = SUMMED[kind] if t.dim() == 4 else (1,)
        return wide.sum(dims), sum_tolerance(key, t, dims, max_abs)
    if kind == "sum":
        return wide.sum((1, 2, 3)), sum_tolerance(key, t, (1, 2, 3), max_abs)
    if kind.startswith("first"):
        return t[: int(kind.removeprefix("first"))], tolerance(key, t)
    h, w = t.shape[-2:]
    y, x = {"crop_tl": (0, 0), "crop_c": (h // 2 - 4, w // 2 - 4), "crop_br": (h - 8, w - 8)}[kind]
    return t[:, :128, y : y + 8, x : x + 8], tolerance(key, t)


def sum_tolerance(key: str, t: torch.Tensor, dims: tuple[int, ...], max_abs: float) -> float:
    if key.startswith(EXACT):
        return 0.0
    return 1e-5 * int(np.prod([t.shape[d] for d in dims])) * max_abs


def tolerance(key: str, value: torch.Tensor) -> float:
    if key.startswith(EXACT) or not value.is_floating_point():
        return 0.0
    if key.startswith("det.") and "boxes" in key:
        return 1e-3
    if key.endswith("scores"):
        return 1e-4 if key == "box.softmax_scores" else 1e-5
    return 2e-3


def mismatches(run: CaseRun, prefixes: tuple[str, ...]) -> list[str]:
    """Reference keys under `prefixes` whose candidate value is off by more than its tolerance."""
    bad = []
    keys = [k for k in run.candidate if k.startswith(prefixes) and not k.startswith("chart.")]
    assert keys, f"{run.name}: no reference key under {prefixes}"
    for key in keys:
        value, atol = run.candidate[key]
        want = run.reference[key]
        if value.shape != want.shape:
            bad.append(f"{run.name} {key}: shape {tuple(value.shape)} != {tuple(want.shape)}")
            continue
        diff = (value.double() - want.double()).abs().max().item() if want.numel() else 0.0
        if diff > atol:
            bad.append(f"{run.name} {key}: |d| {diff:.3g} > {atol:.3g}")
    return bad


def test_input_is_the_demo_resize_of_the_person_image(densepose_reference_dir: Path) -> None:
    for case in sorted(densepose_reference_dir.glob("case*")):
        person = Image.open(case / "person_768x1024.png").convert("RGB")
        expected = np.asarray(Image.open(case / "dp_input_rgb_384x512.png").convert("RGB"))
        assert np.array_equal(np.asarray(person.resize((384, 512))), expected), case.name


def test_resize_shortest_edge_is_exact(runs: list[CaseRun]) -> None:
    for run in runs:
        assert run.resized_sha256 == run.meta["input_resized_bgr_hwc_sha256"], run.name
        assert mismatches(run, ("input.",)) == []


def test_backbone_and_fpn(runs: list[CaseRun]) -> None:
    assert [m for run in runs for m in mismatches(run, ("backbone.", "fpn."))] == []


def test_rpn_head_and_proposals_as_a_set(runs: list[CaseRun]) -> None:
    for run in runs:
        assert run.num_proposals == len(run.reference["rpn.proposal_boxes"])
        assert bool((run.proposal_iou >= 0.999).all()), f"{run.name}: a proposal without twin"
        assert len(set(run.proposal_twin.tolist())) == run.num_proposals, run.name
    assert [m for run in runs for m in mismatches(run, ("rpn.",))] == []


def test_box_stage_row_by_row(runs: list[CaseRun]) -> None:
    for run in runs:  # the twins found by IoU are one-to-one
        kept = run.candidate["box.kept_proposal_index"][0]
        assert bool((kept >= 0).all()), f"{run.name}: a detection from a proposal without twin"
    assert [m for run in runs for m in mismatches(run, ("box.",))] == []


def test_detections(runs: list[CaseRun]) -> None:
    assert [m for run in runs for m in mismatches(run, ("det.",))] == []
    for run in runs:
        instances = run.meta["instances"]
        assert len(run.result.scores) == run.meta["num_instances"] == len(instances)
        assert [list(b) for b in run.result.int_boxes] == [i["box_xywh_int"] for i in instances]
        for got, instance in zip(run.result.boxes, instances, strict=True):
            np.testing.assert_allclose(got, instance["box_xyxy"], atol=1e-3)
        np.testing.assert_allclose(run.result.scores, [i["score"] for i in instances], atol=1e-5)


def test_densepose_outputs(runs: list[CaseRun]) -> None:
    assert [m for run in runs for m in mismatches(run, ("dp.",))] == []


def test_chart_labels_per_instance(runs: list[CaseRun]) -> None:
    for run in runs:
        for i, instance in enumerate(run.meta["instances"]):
            labels = run.result.labels[i]
            want = run.reference[f"chart.{i}.labels"].numpy()
            assert labels.shape == want.shape == tuple(instance["labels_hw"])
            flipped = {tuple(p) for p in np.argwhere(labels != want).tolist()}
            assert flipped <= {tuple(p) for p in instance["near_tie_pixels_yx"]}, (run.name, i)
            assert int((want > 0).sum()) == instance["foreground_pixels"]


def test_original_rendering_matches_apply_net(runs: list[CaseRun], densepose_reference_dir) -> None:
    for run in runs:
        case = densepose_reference_dir / run.name
        segm = render_pose(run.result, run.image, original=True)
        pose = pose_image(segm)
        assert segm.size == (384, 512) and pose.size == (768, 1024) and pose.mode == "RGB"
        allowed = near_tie_mask(run, run.meta["visible_instance_in_dp_segm"])
        want_segm = np.asarray(Image.open(case / "dp_segm_rgb_384x512.png").convert("RGB"))
        assert not (differs(segm, want_segm) & ~allowed).any(), run.name
        allowed_pose = binary_dilation(allowed.repeat(2, 0).repeat(2, 1), iterations=4)
        want_pose = np.asarray(Image.open(case / "pose_768x1024.png").convert("RGB"))
        assert not (differs(pose, want_pose) & ~allowed_pose).any(), run.name


def test_fixed_rendering_paints_the_largest_instance(runs: list[CaseRun]) -> None:
    """The default paints the largest box; the original shows only the last instance."""
    for run in runs:
        instances = run.meta["instances"]
        areas = [i["box_xywh_int"][2] * i["box_xywh_int"][3] for i in instances]
        assert run.result.chosen == int(np.argmax(areas))
        for chosen, original in ((run.result.chosen, False), (len(instances) - 1, True)):
            shown = np.asarray(render_pose(run.result, run.image, original=original))
            labels = run.reference[f"chart.{chosen}.labels"].numpy()
            expected = np.zeros_like(shown)
            x, y, w, h = instances[chosen]["box_xywh_int"]
            expected[y : y + h, x : x + w] = np.array(README_COLOURS, np.uint8)[labels]
            assert not (differs(shown, expected) & ~near_tie_mask(run, chosen)).any(), run.name
    case1 = next((run for run in runs if run.name == "case1"), None)
    if case1 is not None:  # the README's own account of case1
        assert case1.result.chosen == 0 and case1.meta["visible_instance_in_dp_segm"] == 1


def test_no_person(reference_net: DensePoseNet, runs: list[CaseRun]) -> None:
    """A background-only photo (the left margin of a case photo, tiled): no detection."""
    densepose = DensePose(reference_net, "cpu")
    photo = np.asarray(runs[0].image)
    background = Image.fromarray(np.ascontiguousarray(np.tile(photo[:, :96], (1, 4, 1))))
    result = densepose(background)
    assert len(result.scores) == 0 and result.labels == [] and result.chosen is None
    with pytest.raises(NoPersonFound):
        render_pose(result, background)
    grey = np.asarray(render_pose(result, background, original=True)).astype(np.int64)
    r, g, b = (photo[:, :96].astype(np.int64)[..., c] for c in range(3))
    expected = (3735 * b + 19235 * g + 9798 * r + 16384) >> 15  # OpenCV's BGR2GRAY
    assert np.array_equal(grey[:, :96], np.repeat(expected[..., None], 3, axis=2))


def test_wrong_input_refused(reference_net: DensePoseNet) -> None:
    densepose = DensePose(reference_net, "cpu")
    with pytest.raises(InvalidInput, match="384x512 RGB"):
        densepose(Image.new("RGB", (768, 1024)))
    with pytest.raises(InvalidInput):
        densepose(Image.new("L", (384, 512)))


def test_reference_weights_round_trip(
    reference_state, reference_pickle: Path, reference_net: DensePoseNet
) -> None:
    """The model-zoo pickle written from the recipe's tensors reads back and loads unchanged."""
    arrays = read_model_zoo_pickle(reference_pickle)
    assert arrays.keys() == reference_state.keys()
    own = reference_net.state_dict()
    assert own.keys() == reference_state.keys()
    for key, value in reference_state.items():
        assert torch.equal(torch.from_numpy(arrays[key]), value), key
        assert torch.equal(own[key], value), key
    assert list(reference_pickle.parent.iterdir()) == [reference_pickle]  # no file added there


def differs(image: Image.Image, expected: np.ndarray) -> np.ndarray:
    return (np.asarray(image) != expected).any(axis=-1)


def near_tie_mask(run: CaseRun, instance: int) -> np.ndarray:
    """384x512 pixels where the reference allows a label flip (meta near_tie_pixels_yx)."""
    mask = np.zeros((512, 384), bool)
    info = run.meta["instances"][instance]
    x, y = info["box_xywh_int"][:2]
    for row, col in info["near_tie_pixels_yx"]:
        mask[y + row, x + col] = True
    return mask
