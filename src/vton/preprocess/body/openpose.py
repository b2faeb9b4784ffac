"""OpenPose body keypoints as IDM-VTON computes them (preprocess/openpose, SPEC §2), step for step.

The chain, each step a pure function so it can be checked from stored network outputs:
  prepare_input   PIL 384x512 -> HWC3 -> resize_image(., 384) -> BGR -> 138x184 -> padded
                  with 128 to 144x184 -> float32 / 256 - 0.5, (1, 3, 184, 144)
  BodyPoseNet     -> raw PAFs (1,38,23,18), raw heatmaps (1,19,23,18)
  resize_map      x8 LANCZOS4, crop the padding, LANCZOS4 to 384x512 (HWC)
  find_peaks      gaussian_filter(sigma 3), 4-neighbour maximum, > 0.1 (torch, on the
                  net's device, bit-identical to scipy: gaussian_smooth)
  find_connections  19 limbs, 10 PAF samples each, greedy by score
  people_table    OpenPose's subset merge and deletion rules -> candidate (N,4), subset (M,20)
  keypoints_from  18 [x, y] in 384x512 pixels: the largest person (default) or the original
                  wrapper's subset[0] with its one-pass "realignment" (original=True)
Floating point follows the original's operation order (Python's left-to-right sum over the samples,
numpy's linspace, half-to-even rounding), so the results are bit-identical to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from PIL import Image

from vton.errors import InvalidInput, NoPersonFound
from vton.preprocess.body.openpose_net import BodyPoseNet

IMAGE_SIZE = (384, 512)  # width x height the wrapper asserts
BOX_SIZE = 368
SCALE = 0.5 * BOX_SIZE / IMAGE_SIZE[1]  # 0.359375, the one scale of scale_search
STRIDE = 8
PAD_VALUE = 128
THRE1 = 0.1  # peak threshold
THRE2 = 0.05  # PAF sample threshold
MID_NUM = 10  # PAF samples per limb candidate
N_PARTS = 18
GAUSS_SIGMA = 3  # the peak smoothing: gaussian_filter(map, sigma=3), truncate 4.0
GAUSS_RADIUS = int(4.0 * GAUSS_SIGMA + 0.5)  # 12

# Limbs as (partA, partB), 1-based as in the original, and their PAF channel pairs (+19).
LIMB_SEQ = (
    (2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10),
    (10, 11), (2, 12), (12, 13), (13, 14), (2, 1), (1, 15), (15, 17),
    (1, 16), (16, 18), (3, 17), (6, 18),
)  # fmt: skip
MAP_IDX = (
    (31, 32), (39, 40), (33, 34), (35, 36), (41, 42), (43, 44), (19, 20), (21, 22),
    (23, 24), (25, 26), (27, 28), (29, 30), (47, 48), (49, 50), (53, 54), (51, 52),
    (55, 56), (37, 38), (45, 46),
)  # fmt: skip

Peak = tuple[int, int, float, int]  # x, y, unfiltered heatmap value, running id


@dataclass
class Decoded:
    """Everything `Body.__call__` computes from the raw maps (all exactly as the original)."""

    heatmap: np.ndarray  # (512, 384, 19) float32: heatmap_avg holds these values in float64
    paf: np.ndarray  # (512, 384, 38) float32: paf_avg holds these values in float64
    peaks: list[list[Peak]]  # all_peaks: per part 0..17
    connections: list[np.ndarray]  # connection_all: per limb (n, 5) [idA, idB, score, i, j]
    special_k: list[int]  # limbs with no candidates at one end
    candidate: np.ndarray  # (N, 4) float64 [x, y, score, id]; shape (0,) when there is no peak
    subset: np.ndarray  # (M, 20) float64: 18 candidate ids (-1 absent), total score, part count


@dataclass
class Keypoints:
    """18 body keypoints [x, y] in 384x512 pixels, (0, 0) for a missing part (OpenPose order)."""

    points: list[tuple[float, float]]
    people: int  # rows of the people table (persons found)
    person: int = 0  # the subset row the points come from

    def to_json(self) -> dict[str, list[list[float]]]:
        """The original's `{"pose_keypoints_2d": 18 x [x, y]}`."""
        return {"pose_keypoints_2d": [[x, y] for x, y in self.points]}


# --- input ---------------------------------------------------------------------------------------


def hwc3(x: np.ndarray) -> np.ndarray:
    """annotator/util.py HWC3: gray -> 3 channels, RGBA -> composited on white, RGB unchanged."""
    if x.dtype != np.uint8:
        raise InvalidInput(f"image: expected 8-bit pixels, got {x.dtype}")
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3 or x.shape[2] not in (1, 3, 4):
        raise InvalidInput(f"image: expected 1, 3 or 4 channels, got shape {x.shape}")
    c = x.shape[2]
    if c == 3:
        return x
    if c == 1:
        return np.concatenate([x, x, x], axis=2)
    color = x[:, :, 0:3].astype(np.float32)
    alpha = x[:, :, 3:4].astype(np.float32) / 255.0
    y = color * alpha + 255.0 * (1.0 - alpha)
    return y.clip(0, 255).astype(np.uint8)


def resize_image(img: np.ndarray, resolution: int) -> np.ndarray:
    """annotator/util.py resize_image: short side to `resolution`, both sides rounded to x64."""
    h, w = float(img.shape[0]), float(img.shape[1])
    k = float(resolution) / min(h, w)
    h *= k
    w *= k
    hi = int(np.round(h / 64.0)) * 64
    wi = int(np.round(w / 64.0)) * 64
    interp = cv2.INTER_LANCZOS4 if k > 1 else cv2.INTER_AREA
    return cv2.resize(img, (wi, hi), interpolation=interp)


def _smart_resize_k(x: np.ndarray, fx: float, fy: float) -> np.ndarray:
    """annotator/openpose/util.py smart_resize_k: per channel unless 1 or 3 channels."""
    ho, wo = x.shape[:2]
    co = 1 if x.ndim == 2 else x.shape[2]
    ht, wt = ho * fy, wo * fx
    if co in (1, 3):
        k = float(ht + wt) / float(ho + wo)
        interp = cv2.INTER_AREA if k < 1 else cv2.INTER_LANCZOS4
        return cv2.resize(x, (int(wt), int(ht)), interpolation=interp)
    return np.stack([_smart_resize_k(x[:, :, i], fx, fy) for i in range(co)], axis=2)


def _pad_right_down(img: np.ndarray, stride: int, pad_value: int) -> tuple[np.ndarray, list[int]]:
    """padRightDownCorner: pad bottom and right with `pad_value` up to multiples of `stride`."""
    h, w = img.shape[:2]
    pad = [0, 0, 0 if h % stride == 0 else stride - h % stride]
    pad.append(0 if w % stride == 0 else stride - w % stride)
    out = np.full((h + pad[2], w + pad[3], img.shape[2]), pad_value, dtype=img.dtype)
    out[:h, :w] = img
    return out, pad


def image_array(image: Image.Image) -> np.ndarray:
    """The wrapper's view of the photo: np.asarray(PIL) -> HWC3 -> resize_image(., 384), RGB uint8,
    which must come out 512x384 (the wrapper's assert)."""
    if not isinstance(image, Image.Image):
        raise InvalidInput(f"image: expected a PIL image, got {type(image).__name__}")
    if image.size != IMAGE_SIZE:
        w, h = image.size
        raise InvalidInput(f"image: OpenPose takes {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}, got {w}x{h}")
    if image.mode not in ("RGB", "L", "RGBA"):
        raise InvalidInput(f"image: expected mode RGB, L or RGBA, got {image.mode}")
    img = resize_image(hwc3(np.asarray(image)), IMAGE_SIZE[0])
    if img.shape[:2] != (IMAGE_SIZE[1], IMAGE_SIZE[0]):  # the wrapper's assert; never at 384x512
        raise InvalidInput(f"image: resized to {img.shape[1]}x{img.shape[0]}, expected 384x512")
    return img


def prepare_input(image: Image.Image | np.ndarray) -> np.ndarray:
    """The network input: float32 (1, 3, 184, 144), BGR / 256 - 0.5 (SPEC §2).

    `image`: the 384x512 PIL photo, or the wrapper's RGB uint8 array (512, 384, 3).
    """
    rgb = image_array(image) if isinstance(image, Image.Image) else image
    bgr = rgb[:, :, ::-1].copy()
    small = _smart_resize_k(bgr, SCALE, SCALE)
    padded, _ = _pad_right_down(small, STRIDE, PAD_VALUE)
    im = np.transpose(np.float32(padded[:, :, :, np.newaxis]), (3, 2, 0, 1)) / 256 - 0.5
    return np.ascontiguousarray(im)


# --- maps ----------------------------------------------------------------------------------------


def resize_map(raw: np.ndarray) -> np.ndarray:
    """One raw output (1, C, 23, 18) -> (512, 384, C) float32, as body.py L62-74 does it.

    Per channel (smart_resize_k / smart_resize with C not 1 or 3): x8 (LANCZOS4) to 144x184, the
    padding cropped to 138x184, LANCZOS4 to 384x512. One scale: `heatmap_avg += heatmap_avg +
    heatmap` is just this float32 map in float64, so the float64 copy is left out (every later
    use reads the same numbers). All channels go through cv2 in one C-channel image: its
    LANCZOS4 computes each channel on its own with the same arithmetic (cn is a stride; rows of
    144*C and 384*C floats leave no scalar tail to the SIMD), the same numbers as per plane
    (tests: the stored probes and random maps), in half the time.
    """
    raw = np.asarray(raw, dtype=np.float32)
    if raw.ndim != 4 or raw.shape[0] != 1 or raw.shape[2:] != (23, 18):
        raise InvalidInput(f"raw map: expected shape (1, C, 23, 18), got {raw.shape}")
    _, channels, h, w = raw.shape
    # the network input was int(512 * SCALE) x int(384 * SCALE) = 184x138 before the padding
    crop_h, crop_w = int(IMAGE_SIZE[1] * SCALE), int(IMAGE_SIZE[0] * SCALE)
    hwc = np.ascontiguousarray(raw[0].transpose(1, 2, 0))
    big = cv2.resize(hwc, (w * STRIDE, h * STRIDE), interpolation=cv2.INTER_LANCZOS4)
    big = np.ascontiguousarray(big[:crop_h, :crop_w])
    out = cv2.resize(big, IMAGE_SIZE, interpolation=cv2.INTER_LANCZOS4)
    return out.reshape(IMAGE_SIZE[1], IMAGE_SIZE[0], channels)  # cv2 drops a single channel


# --- peaks ---------------------------------------------------------------------------------------


def _gaussian_weights() -> tuple[float, ...]:
    """scipy.ndimage's order-0 kernel (_gaussian_kernel1d) for GAUSS_SIGMA, float64, by offset
    0..GAUSS_RADIUS. It is symmetric, so correlate1d's reversed copy is the same."""
    x = np.arange(-GAUSS_RADIUS, GAUSS_RADIUS + 1)
    phi = np.exp(-0.5 / (GAUSS_SIGMA * GAUSS_SIGMA) * x**2)
    phi = phi / phi.sum()
    return tuple(float(v) for v in phi[GAUSS_RADIUS:])


GAUSS_WEIGHTS = _gaussian_weights()


def _smooth_dim1(x: torch.Tensor) -> torch.Tensor:
    """gaussian_filter1d along dim 1 of (C, n, m) (n >= GAUSS_RADIUS), float64, as scipy's
    NI_Correlate1D runs a symmetric kernel: mode 'reflect' (d c b a | a b c d | d c b a), then
    per sample `acc = x[0] * w[0]; acc += (x[-j] + x[+j]) * w[j]` for j = radius .. 1. Each
    step is its own torch op, so each rounds on its own like that C loop (no FMA, no
    reordering). The padded copy also makes the float64 copy; every tap is a contiguous slab."""
    c, n, m = x.shape
    r = GAUSS_RADIUS
    padded = torch.empty((c, n + 2 * r, m), dtype=torch.float64, device=x.device)
    padded[:, r : r + n] = x
    padded[:, :r] = x[:, :r].flip(1)
    padded[:, r + n :] = x[:, n - r :].flip(1)

    def tap(j: int) -> torch.Tensor:
        return padded[:, r + j : r + j + n]

    acc = tap(0) * GAUSS_WEIGHTS[0]
    term = torch.empty_like(acc)
    for j in range(r, 0, -1):
        torch.add(tap(-j), tap(j), out=term)
        acc.add_(term.mul_(GAUSS_WEIGHTS[j]))
    return acc


def gaussian_smooth(planes: torch.Tensor) -> torch.Tensor:
    """scipy.ndimage.gaussian_filter(plane, sigma=3) of every (H, W) plane of `planes` (C, H, W)
    taken as float64, bit for bit, on the tensor's device: along H, then along W (through a
    transposed copy), as scipy does. The result is a (C, H, W) view of a (C, W, H) tensor."""
    return _smooth_dim1(_smooth_dim1(planes).transpose(1, 2)).transpose(1, 2)


def _maxima(g: torch.Tensor) -> torch.Tensor:
    """The original's peak test on smoothed (C, H, W) maps: >= each of the 4 neighbours (0
    outside the map) and > THRE1."""
    p = torch.nn.functional.pad(g, (1, 1, 1, 1))
    c = p[:, 1:-1, 1:-1]
    up, down, left, right = p[:, :-2, 1:-1], p[:, 2:, 1:-1], p[:, 1:-1, :-2], p[:, 1:-1, 2:]
    return (c >= up) & (c >= down) & (c >= left) & (c >= right) & (c > THRE1)


def find_peaks(heatmap: np.ndarray, device: str | torch.device = "cpu") -> list[list[Peak]]:
    """all_peaks for parts 0..17 of the (512, 384, C) heatmap: smoothed local maxima (>= 4
    neighbours, 0 outside) above 0.1, row-major, each (x, y, unsmoothed value, running id).

    The smoothing and the maximum test run on `device` in float64 (gaussian_smooth). A GPU
    takes all 18 planes at once; the CPU three at a time, whose ~15 MB stay in cache (all 18
    at once are memory-bound, several times slower; one at a time costs 3x the thread syncs).
    """
    device = torch.device(device)
    planes = torch.from_numpy(heatmap).to(device).permute(2, 0, 1)[:N_PARTS]
    batch = 3 if device.type == "cpu" else N_PARTS
    masks = [_maxima(gaussian_smooth(p)) for p in planes.split(batch)]
    part, ys, xs = torch.cat(masks).nonzero().cpu().numpy().T  # part by part, row-major
    values = heatmap[ys, xs, part].tolist()  # the unsmoothed map
    peaks = list(zip(xs.tolist(), ys.tolist(), values, range(len(values)), strict=True))
    ends = np.cumsum(np.bincount(part, minlength=N_PARTS)).tolist()
    return [peaks[start:end] for start, end in zip([0, *ends[:-1]], ends, strict=True)]


# --- limbs ---------------------------------------------------------------------------------------


def _limb_scores(
    paf_x: np.ndarray, paf_y: np.ndarray, cand_a: list[Peak], cand_b: list[Peak], height: int
) -> tuple[np.ndarray, np.ndarray]:
    """For every (i, j) pair, i outer: the score with distance prior and whether it is kept.

    Vectorised, but each number is computed with the original's operations in its order.
    """
    a = np.array([p[:2] for p in cand_a], dtype=np.int64)
    b = np.array([p[:2] for p in cand_b], dtype=np.int64)
    ax = np.repeat(a[:, 0], len(b))
    ay = np.repeat(a[:, 1], len(b))
    bx = np.tile(b[:, 0], len(a))
    by = np.tile(b[:, 1], len(a))
    vx = bx - ax
    vy = by - ay
    norm = np.sqrt((vx * vx + vy * vy).astype(np.float64))  # math.sqrt of the exact int
    norm = np.maximum(0.001, norm)
    ux = vx / norm
    uy = vy / norm
    # np.linspace(start, stop, 10) for scalars: k * ((stop - start) / 9) + start, last = stop
    k = np.arange(MID_NUM, dtype=np.float64)
    step_x = (bx - ax).astype(np.float64) / (MID_NUM - 1)
    step_y = (by - ay).astype(np.float64) / (MID_NUM - 1)
    lx = k[None, :] * step_x[:, None] + ax[:, None]
    ly = k[None, :] * step_y[:, None] + ay[:, None]
    lx[:, -1] = bx
    ly[:, -1] = by
    # int(round(v)): Python's round on float64 is half-to-even, like np.rint
    ix = np.rint(lx).astype(np.int64)
    iy = np.rint(ly).astype(np.int64)
    samples = paf_x[iy, ix] * ux[:, None] + paf_y[iy, ix] * uy[:, None]
    total = samples[:, 0] + 0.0  # Python's sum(): 0 + s0 + s1 + ... left to right
    for n in range(1, MID_NUM):
        total = total + samples[:, n]
    prior = 0.5 * height / norm - 1
    score = total / MID_NUM + np.where(prior < 0, prior, 0.0)
    keep = ((samples > THRE2).sum(axis=1) > 0.8 * MID_NUM) & (score > 0)
    return score, keep


def find_connections(
    paf: np.ndarray, all_peaks: list[list[Peak]]
) -> tuple[list[np.ndarray], list[int]]:
    """connection_all (per limb: rows [idA, idB, score, i, j], float64; [] when an end has no peak)
    and special_k, as body.py L112-161."""
    height = paf.shape[0]
    connection_all: list[np.ndarray] = []
    special_k: list[int] = []
    for k, ((part_a, part_b), (ch_x, ch_y)) in enumerate(zip(LIMB_SEQ, MAP_IDX, strict=True)):
        cand_a = all_peaks[part_a - 1]
        cand_b = all_peaks[part_b - 1]
        n_a, n_b = len(cand_a), len(cand_b)
        if n_a == 0 or n_b == 0:
            special_k.append(k)
            connection_all.append(np.zeros((0, 5)))
            continue
        paf_x, paf_y = paf[:, :, ch_x - 19], paf[:, :, ch_y - 19]
        score, keep = _limb_scores(paf_x, paf_y, cand_a, cand_b, height)
        kept = np.nonzero(keep)[0]
        order = kept[np.argsort(-score[kept], kind="stable")]  # sorted(..., reverse=True) is stable
        rows: list[list[float]] = []
        used_i: set[int] = set()
        used_j: set[int] = set()
        for idx in order:
            i, j = divmod(int(idx), n_b)
            if i in used_i or j in used_j:
                continue
            rows.append([cand_a[i][3], cand_b[j][3], float(score[idx]), i, j])
            used_i.add(i)
            used_j.add(j)
            if len(rows) >= min(n_a, n_b):
                break
        connection_all.append(np.array(rows, dtype=np.float64).reshape(-1, 5))
    return connection_all, special_k


# --- people --------------------------------------------------------------------------------------


def candidate_array(all_peaks: list[list[Peak]]) -> np.ndarray:
    """The original's `np.array([peak for part in all_peaks for peak in part])`: (N, 4) float64,
    or shape (0,) when there is no peak at all."""
    flat = [p for part in all_peaks for p in part]
    if not flat:
        return np.array([])
    return np.array(flat, dtype=np.float64)


def people_table(
    connection_all: list[np.ndarray],
    special_k: list[int],
    candidate: np.ndarray,
) -> np.ndarray:
    """The subset (M, 20) of body.py L163-214: rows of 18 candidate ids, total score, part count.

    `candidate` is (N, 4) [x, y, score, id] (only the scores are read). At most two rows can match
    one connection: each limb uses a peak once per end, and a part id sits in two rows only after
    the "as like found == 1" branch ran on limb 17 or 18, the last limbs to use parts 16 and 17.
    """
    subset = -1 * np.ones((0, 20))
    for k in range(len(MAP_IDX)):
        if k in special_k:
            continue
        conn = connection_all[k]
        part_as = conn[:, 0]
        part_bs = conn[:, 1]
        index_a, index_b = LIMB_SEQ[k][0] - 1, LIMB_SEQ[k][1] - 1
        for i in range(len(conn)):
            found = 0
            subset_idx = [-1, -1]
            for j in range(len(subset)):
                if subset[j][index_a] == part_as[i] or subset[j][index_b] == part_bs[i]:
                    subset_idx[found] = j
                    found += 1
            if found == 1:
                j = subset_idx[0]
                if subset[j][index_b] != part_bs[i]:
                    subset[j][index_b] = part_bs[i]
                    subset[j][-1] += 1
                    subset[j][-2] += candidate[part_bs[i].astype(int), 2] + conn[i][2]
            elif found == 2:
                j1, j2 = subset_idx
                membership = ((subset[j1] >= 0).astype(int) + (subset[j2] >= 0).astype(int))[:-2]
                if len(np.nonzero(membership == 2)[0]) == 0:  # disjoint: merge
                    subset[j1][:-2] += subset[j2][:-2] + 1
                    subset[j1][-2:] += subset[j2][-2:]
                    subset[j1][-2] += conn[i][2]
                    subset = np.delete(subset, j2, 0)
                else:  # as if found == 1
                    subset[j1][index_b] = part_bs[i]
                    subset[j1][-1] += 1
                    subset[j1][-2] += candidate[part_bs[i].astype(int), 2] + conn[i][2]
            elif not found and k < 17:
                row = -1 * np.ones(20)
                row[index_a] = part_as[i]
                row[index_b] = part_bs[i]
                row[-1] = 2
                row[-2] = sum(candidate[conn[i, :2].astype(int), 2]) + conn[i][2]
                subset = np.vstack([subset, row])
    delete = [
        i for i in range(len(subset)) if subset[i][-1] < 4 or subset[i][-2] / subset[i][-1] < 0.4
    ]
    return np.delete(subset, delete, axis=0)


def decode_maps(
    raw_paf: np.ndarray, raw_heatmap: np.ndarray, device: str | torch.device = "cpu"
) -> Decoded:
    """`Body.__call__` after the network: raw (1,38,23,18) PAFs and (1,19,23,18) heatmaps ->
    resized maps, peaks (smoothed on `device`), connections, candidate (in pixels) and subset."""
    raw_paf = np.asarray(raw_paf)
    raw_heatmap = np.asarray(raw_heatmap)
    if raw_paf.shape[:2] != (1, 38) or raw_heatmap.shape[:2] != (1, 19):
        raise InvalidInput(
            f"raw maps: expected (1, 38, 23, 18) and (1, 19, 23, 18), got {raw_paf.shape} and "
            f"{raw_heatmap.shape}"
        )
    heatmap = resize_map(raw_heatmap)
    paf = resize_map(raw_paf)
    peaks = find_peaks(heatmap, device)
    connections, special_k = find_connections(paf, peaks)
    candidate = candidate_array(peaks)
    subset = people_table(connections, special_k, candidate)
    return Decoded(heatmap, paf, peaks, connections, special_k, candidate, subset)


# --- keypoints -----------------------------------------------------------------------------------


def normalized_candidate(candidate: np.ndarray) -> np.ndarray:
    """The candidate as the detector leaves it: x / 384 and y / 512 (float64, a copy).

    The original divides `candidate[:, :2]`, a view, in place, so Body's own array ends up
    normalised too: the reference body_candidate.npy holds these values.
    """
    out = np.array(candidate, dtype=np.float64)
    if out.ndim == 2 and out.shape[1] == 4:
        out[:, 0] /= float(IMAGE_SIZE[0])
        out[:, 1] /= float(IMAGE_SIZE[1])
    return out


def detector_bodies(candidate: np.ndarray, subset: np.ndarray) -> dict[str, list]:
    """OpenposeDetector's `bodies` (before the wrapper touches it): candidate [x/384, y/512] and
    subset, as Python lists. `candidate` in pixels, as decode_maps returns it."""
    norm = normalized_candidate(candidate)
    if norm.ndim == 2 and norm.shape[1] == 4:
        norm = norm[:, :2]
    return {"candidate": norm.tolist(), "subset": np.asarray(subset).tolist()}


def original_wrapper(bodies: dict[str, list]) -> list[list[float]]:
    """run_openpose.py L50-70 verbatim, on the detector's `bodies`, which it mutates in place like
    the original (the realignment inserts into and pops from bodies["candidate"], and the first 18
    entries are scaled to pixels; the reference detector_bodies.json is this mutated list).
    Returns the 18 [x, y]; raises IndexError where the original does."""
    candidate = bodies["candidate"]
    subset = bodies["subset"][0][:18]
    for i in range(18):
        if subset[i] == -1:
            candidate.insert(i, [0, 0])
            for j in range(i, 18):
                if subset[j] != -1:
                    subset[j] += 1
        elif subset[i] != i:
            candidate.pop(i)
            for j in range(i, 18):
                if subset[j] != -1:
                    subset[j] -= 1
    candidate = candidate[:18]
    for i in range(18):
        candidate[i][0] *= 384
        candidate[i][1] *= 512
    return candidate


def largest_person(candidate: np.ndarray, subset: np.ndarray) -> int:
    """The subset row whose found keypoints span the largest bounding box (pixels); ties: the
    earlier row."""
    best, best_area = 0, -1.0
    for row in range(len(subset)):
        ids = subset[row, :N_PARTS]
        ids = ids[ids >= 0].astype(int)
        area = 0.0
        if len(ids):
            xy = candidate[ids, :2]
            area = float(np.ptp(xy[:, 0]) * np.ptp(xy[:, 1]))
        if area > best_area:
            best, best_area = row, area
    return best


def person_points(candidate: np.ndarray, subset: np.ndarray, row: int) -> list[tuple[float, float]]:
    """Row `row`'s 18 keypoints in pixels, each part looked up by its candidate id ((0, 0) when
    absent). The numbers go through the detector's /384, /512 and the wrapper's *384, *512, so a
    part the original places right has the original's exact value."""
    norm = normalized_candidate(candidate)
    points: list[tuple[float, float]] = []
    for part in range(N_PARTS):
        cid = int(subset[row, part])
        if cid < 0:
            points.append((0.0, 0.0))
        else:
            points.append((float(norm[cid, 0]) * 384, float(norm[cid, 1]) * 512))
    return points


def keypoints_from(
    candidate: np.ndarray, subset: np.ndarray, *, original: bool = False
) -> Keypoints:
    """The 18 keypoints in 384x512 pixels from Body's candidate (N, 4, pixels) and subset (M, 20).

    Default: the person with the largest bounding box (largest_person), parts looked up by id
    (person_points). original=True: the wrapper's result: subset[0], the first row created rather
    than the best, through the one-pass realignment, which hands back another part's or person's
    coordinates when there are unconnected peaks or other people.
    Nobody found (no subset row), or the original wrapper failing: NoPersonFound.
    """
    subset = np.asarray(subset, dtype=np.float64).reshape(-1, 20)
    people = len(subset)
    if people == 0:
        raise NoPersonFound("OpenPose found nobody in the photo")
    if original:
        try:
            points = original_wrapper(detector_bodies(candidate, subset))
        except IndexError as e:
            raise NoPersonFound(f"OpenPose: the original keypoint wrapper fails here ({e})") from e
        return Keypoints([(float(p[0]), float(p[1])) for p in points], people, 0)
    candidate = np.asarray(candidate, dtype=np.float64)
    row = largest_person(candidate, subset)
    return Keypoints(person_points(candidate, subset, row), people, row)


# --- the model -----------------------------------------------------------------------------------


class BodyPose:
    """OpenPose body keypoints of a 384x512 RGB photo: the network on its device (fp32, inference
    mode), the peak smoothing there too, the rest of the post-processing on the CPU.

    On CUDA the network runs under the process's TF32 setting, as IDM-VTON's own CUDA run does
    (PyTorch lets cuDNN use TF32 for fp32 convs by default; the engine enables it too). It is not
    switched here: the flag is process-wide, and flipping it while the engine's fp32 VAE runs on
    another thread would change try-on images. Reference checks switch TF32 off themselves (on
    an H200 TF32 moved the random-weights network by 2.8e-3 relative and n01's keypoints)."""

    def __init__(self, net: BodyPoseNet, device: str | torch.device | None = None) -> None:
        self.device = torch.device(device) if device is not None else next(net.parameters()).device
        self.net = net.to(device=self.device, dtype=torch.float32).eval()

    def raw_maps(self, image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
        """The network's (PAFs, heatmaps) for the photo, float32 numpy on the CPU."""
        x = torch.from_numpy(prepare_input(image)).to(self.device)
        with torch.inference_mode():
            paf, heatmap = self.net(x)
        return paf.float().cpu().numpy(), heatmap.float().cpu().numpy()

    def decode(self, image: Image.Image) -> Decoded:
        return decode_maps(*self.raw_maps(image), self.device)

    def __call__(self, image: Image.Image, *, original: bool = False) -> Keypoints:
        d = self.decode(image)
        return keypoints_from(d.candidate, d.subset, original=original)
