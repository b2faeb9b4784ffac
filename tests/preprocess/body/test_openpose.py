"""OpenPose body post-processing against the original's files, from the stored raw maps (exact),
the input preparation, and the keypoint choice: the original wrapper next to the fixed default."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.numpy import load_file
from scipy.ndimage import gaussian_filter

from tests.preprocess.body.openpose_cases import (
    CASES,
    NET_CASES,
    case_dir,
    case_params,
    expected_keypoints,
    load_json,
    raw_maps,
)
from vton.errors import InvalidInput, NoPersonFound
from vton.preprocess.body.openpose import (
    Keypoints,
    decode_maps,
    detector_bodies,
    find_peaks,
    gaussian_smooth,
    keypoints_from,
    largest_person,
    normalized_candidate,
    original_wrapper,
    person_points,
    prepare_input,
    resize_map,
)

CUDA = pytest.param(
    "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
)
DEVICES = ["cpu", CUDA]


@pytest.fixture(scope="module")
def decoded() -> dict:
    """decode_maps of every case's stored raw maps, computed once."""
    return {name: decode_maps(*raw_maps(name)) for name in CASES}


def as_lists(points: list[tuple[float, float]]) -> list[list[float]]:
    return [[x, y] for x, y in points]


# --- every case, from the stored raw maps ---------------------------------------------------------


@pytest.mark.parametrize("name", case_params(CASES))
def test_resized_maps_match_the_probes(name, decoded) -> None:
    probe = load_file(case_dir(name) / "resized_maps_probe.safetensors")
    d = decoded[name]
    for key, arr in (("heatmap_avg", d.heatmap), ("paf_avg", d.paf)):
        assert arr.dtype == np.float32  # the original's float64 maps hold exactly these values
        arr = arr.astype(np.float64)
        assert list(arr.shape) == probe[f"{key}_shape"].tolist(), key
        idx = probe[f"{key}_probe_index"]  # [y, x, c]
        values = arr[idx[:, 0], idx[:, 1], idx[:, 2]]
        assert np.array_equal(values, probe[f"{key}_probe_value"]), key
        assert np.array_equal(arr.max(axis=(0, 1)), probe[f"{key}_channel_max"]), key
        # float64 sums in another order may differ in the 8th significant digit (README)
        scale = np.abs(arr).sum(axis=(0, 1)) + 1.0
        sums = arr.sum(axis=(0, 1))
        assert np.all(np.abs(sums - probe[f"{key}_channel_sum"]) <= 1e-7 * scale), key


@pytest.mark.parametrize("name", case_params(CASES))
def test_peaks_connections_and_people_match_exactly(name, decoded) -> None:
    d, folder = decoded[name], case_dir(name)
    peaks = load_json(folder / "peaks.json")["all_peaks"]
    assert [[list(p) for p in part] for part in d.peaks] == peaks
    connections = load_json(folder / "connections.json")
    assert [c.tolist() for c in d.connections] == connections["connection_all"]
    assert d.special_k == connections["special_k"]
    # the detector divides Body's own candidate array in place: the stored file is normalised
    candidate = np.load(folder / "body_candidate.npy")
    assert candidate.shape == normalized_candidate(d.candidate).shape
    assert np.array_equal(candidate, normalized_candidate(d.candidate))
    subset = np.load(folder / "body_subset.npy")
    assert subset.shape == d.subset.shape and np.array_equal(subset, d.subset)
    if len(d.candidate):
        ids = np.concatenate([[p[3] for p in part] for part in d.peaks if part])
        assert np.array_equal(d.candidate[:, 3], ids)  # running ids, part after part


@pytest.mark.parametrize("name", case_params(CASES))
def test_keypoints_and_detector_bodies_match_exactly(name, decoded) -> None:
    d, folder = decoded[name], case_dir(name)
    expected = expected_keypoints(name)
    bodies = detector_bodies(d.candidate, d.subset)
    if expected is None:
        with pytest.raises(IndexError):
            original_wrapper(bodies)
        with pytest.raises(NoPersonFound):
            keypoints_from(d.candidate, d.subset, original=True)
        if len(d.subset) == 0:
            with pytest.raises(NoPersonFound):
                keypoints_from(d.candidate, d.subset)
        load_json(folder / "error.json")  # the original raised (IndexError: nobody found)
    else:
        assert original_wrapper(bodies) == expected
        kp = keypoints_from(d.candidate, d.subset, original=True)
        assert as_lists(kp.points) == expected
        assert kp.people == len(d.subset) and kp.person == 0
        assert kp.to_json() == load_json(folder / "keypoints.json")
        fixed = keypoints_from(d.candidate, d.subset)
        assert fixed.people == len(d.subset)
        assert fixed.points == person_points(d.candidate, d.subset, fixed.person)
    summary = folder / "summary.json"
    if summary.is_file():
        summary = load_json(summary)
        assert summary["peaks_per_part"] == [len(p) for p in d.peaks]
        assert summary["n_candidates"] == len(d.candidate)
        assert summary["n_subset_rows"] == len(d.subset)
        assert summary["keypoints"] == expected
    # the stored bodies are the list the wrapper mutated in place (realigned, first 18 in pixels)
    if (folder / "detector_bodies.json").is_file():
        assert bodies == load_json(folder / "detector_bodies.json")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", case_params(CASES))
def test_gaussian_smooth_is_scipys_bit_for_bit_on_the_cases(name, device, decoded) -> None:
    heatmap = decoded[name].heatmap.astype(np.float64)  # heatmap_avg
    planes = torch.from_numpy(np.ascontiguousarray(heatmap.transpose(2, 0, 1)[:18]))
    ours = gaussian_smooth(planes.to(device)).cpu().numpy()
    for part in range(18):
        assert np.array_equal(ours[part], gaussian_filter(heatmap[:, :, part], sigma=3)), part


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(18, 512, 384), (3, 13, 40), (2, 97, 12)])
def test_gaussian_smooth_is_scipys_bit_for_bit_on_random_maps(shape, device) -> None:
    rng = np.random.default_rng(sum(shape))
    for scale in (1e-6, 1.0, 1e6):
        maps = rng.standard_normal(shape) * scale
        maps[0, :5] = 0.25  # flat patches and exact ties
        ours = gaussian_smooth(torch.from_numpy(maps).to(device)).cpu().numpy()
        for c in range(shape[0]):
            assert np.array_equal(ours[c], gaussian_filter(maps[c], sigma=3)), (scale, c)


def per_plane_resize(raw: np.ndarray) -> np.ndarray:
    """body.py's resize as the original runs it: cv2 on one channel plane at a time."""
    planes = []
    for plane in raw[0]:
        big = cv2.resize(plane, (144, 184), interpolation=cv2.INTER_LANCZOS4)
        big = np.ascontiguousarray(big[:184, :138])
        planes.append(cv2.resize(big, (384, 512), interpolation=cv2.INTER_LANCZOS4))
    return np.stack(planes, axis=2)


@pytest.mark.parametrize("channels", [38, 19, 5, 2, 1])
def test_resize_map_is_the_per_plane_resize_on_random_maps(channels) -> None:
    rng = np.random.default_rng(channels)
    for scale in (1e-4, 1.0, 1e4):
        raw = (rng.standard_normal((1, channels, 23, 18)) * scale).astype(np.float32)
        for maps in (raw, np.maximum(raw, 0)):
            out = resize_map(maps)
            assert out.shape == (512, 384, channels) and out.dtype == np.float32
            assert np.array_equal(out, per_plane_resize(maps)), scale


@pytest.mark.parametrize("device", [CUDA])
@pytest.mark.parametrize("name", case_params(CASES))
def test_peaks_found_on_the_gpu_match_exactly(name, device, decoded) -> None:
    expected = load_json(case_dir(name) / "peaks.json")["all_peaks"]
    peaks = find_peaks(decoded[name].heatmap, device)
    assert [[list(p) for p in part] for part in peaks] == expected


@pytest.mark.parametrize("name", case_params(NET_CASES))
def test_input_preparation_matches_exactly(name) -> None:
    image = Image.open(case_dir(name) / "input_384x512.png")
    x = prepare_input(image)
    expected = np.load(case_dir(name) / "net_input.npy")
    assert x.dtype == np.float32 and x.shape == expected.shape == (1, 3, 184, 144)
    assert np.array_equal(x, expected)
    assert np.all(x[0, :, :, 138:] == np.float32(128 / 256 - 0.5))  # the right padding


# --- the keypoint choice: original wrapper vs the fixed default -----------------------------------


def test_two_people_original_keeps_the_first_row_fixed_keeps_the_largest(decoded) -> None:
    name = "s03_two_people"
    if name not in decoded:
        pytest.skip("case s03_two_people not found")
    d = decoded[name]
    people = load_json(case_dir(name) / "case.json")["people_pixels"]
    assert len(d.subset) == 2
    original = keypoints_from(d.candidate, d.subset, original=True)
    fixed = keypoints_from(d.candidate, d.subset)
    assert as_lists(original.points) == expected_keypoints(name)  # the left person, subset[0]
    assert (original.person, fixed.person, original.people, fixed.people) == (0, 1, 2, 2)
    for kp, truth in ((original, people[0]), (fixed, people[1])):
        err = np.abs(np.array(kp.points) - np.array([truth[str(i)] for i in range(18)]))
        assert err.max() <= 1.5
    assert fixed.points == person_points(d.candidate, d.subset, 1)
    assert person_points(d.candidate, d.subset, 0) == original.points  # right here: no extras


def test_realignment_gives_other_parts_coordinates_on_n01(decoded) -> None:
    name = "n01_random_weights"
    if name not in decoded:
        pytest.skip("case n01_random_weights not found")
    d = decoded[name]
    row0 = d.subset[0, :18].astype(int)
    original = keypoints_from(d.candidate, d.subset, original=True).points
    looked_up = person_points(d.candidate, d.subset, 0)
    assert row0[1] >= 0 and original[1] != looked_up[1]
    # the original's neck is a nose peak (part 0): the realignment popped too little
    nose_peaks = {(float(p[0]), float(p[1])) for p in d.peaks[0]}
    neck_peaks = {(float(p[0]), float(p[1])) for p in d.peaks[1]}
    assert original[1] in nose_peaks and original[1] not in neck_peaks
    assert looked_up[1] in neck_peaks
    for part, cid in enumerate(row0):
        want = (0.0, 0.0) if cid < 0 else tuple(float(v) for v in d.candidate[cid, :2])
        assert looked_up[part] == want
    fixed = keypoints_from(d.candidate, d.subset)
    assert fixed.person == largest_person(d.candidate, d.subset)
    assert fixed.points == person_points(d.candidate, d.subset, fixed.person)


def hand_made() -> tuple[np.ndarray, np.ndarray]:
    """Two unconnected nose peaks before the person's, a neck, a right and a left shoulder."""
    peaks = [  # x, y, part
        (10, 10, 0), (20, 20, 0), (100, 50, 0),
        (100, 80, 1),
        (80, 82, 2),
        (120, 84, 5),
    ]  # fmt: skip
    candidate = np.array([[x, y, 0.9, i] for i, (x, y, _) in enumerate(peaks)], dtype=np.float64)
    row = -np.ones(20)
    row[[0, 1, 2, 5]] = [2, 3, 4, 5]
    row[18:] = [5.0, 4]
    return candidate, row[None, :]


def test_hand_made_realignment_returns_an_unconnected_peak() -> None:
    candidate, subset = hand_made()
    original = keypoints_from(candidate, subset, original=True).points
    fixed = keypoints_from(candidate, subset).points
    # the original pops one entry per misplaced part: at part 1 it pops the person's own nose
    assert original[0] == (20.0, 20.0)
    assert fixed[0] == (100.0, 50.0)
    assert original[1:] == fixed[1:]
    assert fixed[1] == (100.0, 80.0) and fixed[2] == (80.0, 82.0) and fixed[5] == (120.0, 84.0)
    assert fixed[3] == fixed[17] == (0.0, 0.0)


def test_largest_person_by_bounding_box_ties_to_the_earlier_row() -> None:
    xy = [(0, 0), (10, 10), (50, 50), (70, 80), (0, 0), (10, 10)]
    candidate = np.array([[x, y, 1.0, i] for i, (x, y) in enumerate(xy)])
    rows = -np.ones((3, 20))
    rows[0, [0, 1]] = [0, 1]  # 10 x 10
    rows[1, [0, 1]] = [2, 3]  # 20 x 30
    rows[2, [0, 1]] = [4, 5]  # 10 x 10
    assert largest_person(candidate, rows) == 1
    assert largest_person(candidate, rows[[0, 2]]) == 0
    kp = keypoints_from(candidate, rows)
    assert kp.person == 1 and kp.points[0] == (50.0, 50.0) and kp.points[1] == (70.0, 80.0)


def test_nobody_found_raises_in_both_modes() -> None:
    candidate, subset = hand_made()
    for original in (False, True):
        with pytest.raises(NoPersonFound):
            keypoints_from(candidate, subset[:0], original=original)
        with pytest.raises(NoPersonFound):
            keypoints_from(np.array([]), np.ones((0, 20)), original=original)


def test_flat_maps_find_no_peak_and_nobody() -> None:
    d = decode_maps(np.zeros((1, 38, 23, 18), np.float32), np.zeros((1, 19, 23, 18), np.float32))
    assert all(p == [] for p in d.peaks) and d.special_k == list(range(19))
    assert d.candidate.shape == (0,) and d.subset.shape == (0, 20)
    with pytest.raises(NoPersonFound):
        keypoints_from(d.candidate, d.subset)


def test_peaks_are_maxima_with_ties_and_zero_outside() -> None:
    """A flat part map: every pixel equals its neighbours (ties count), the border beats the 0
    outside, so every pixel is a peak; nothing below the threshold (0.1) is."""
    heatmap = np.zeros((512, 384, 19))
    heatmap[:, :, 3] = 0.5
    heatmap[:, :, 4] = 0.09
    peaks = find_peaks(heatmap)
    assert [len(p) for p in peaks] == [0, 0, 0, 512 * 384] + [0] * 14
    assert peaks[3][:2] == [(0, 0, 0.5, 0), (1, 0, 0.5, 1)]  # row-major, (x, y, value, id)
    assert peaks[3][-1] == (383, 511, 0.5, 512 * 384 - 1)


def test_keypoints_json_form() -> None:
    kp = Keypoints([(1.0, 2.0)] * 18, people=1)
    assert kp.to_json() == {"pose_keypoints_2d": [[1.0, 2.0]] * 18}


def test_prepare_input_refuses_other_sizes_and_modes() -> None:
    with pytest.raises(InvalidInput, match="384x512"):
        prepare_input(Image.new("RGB", (768, 1024)))
    with pytest.raises(InvalidInput, match="mode"):
        prepare_input(Image.new("CMYK", (384, 512)))
    gray = prepare_input(Image.new("L", (384, 512), 200))
    assert np.array_equal(gray, prepare_input(Image.new("RGB", (384, 512), (200, 200, 200))))
