"""The OpenPose body network (CMU's `bodypose_model`, as IDM-VTON's preprocess/openpose/annotator/
openpose/model.py builds it) in plain PyTorch, with the checkpoint layout of `body_pose_model.pth`.

Layout: a VGG trunk (conv1_1 .. conv4_4_CPM, three 2x2 max-pools: stride 8) and 6 stages of two
branches each: L1 gives the 38 part-affinity fields (PAFs), L2 the 19 heatmaps (18 parts and the
background). Stage 1 reads the trunk's 128 channels, stages 2-6 read [L1, L2, trunk]
(38 + 19 + 128 = 185 channels).
Every conv is followed by a ReLU except each branch's last one, with one quirk kept on purpose: the
original's no-ReLU list names `Mconv7_stage6_L1` twice and omits `Mconv7_stage6_L2`, so the final
heatmap output goes through a ReLU (SPEC §2).

The checkpoint stores each layer under its bare name (`conv1_1.weight`, `Mconv7_stage6_L2.bias`),
which the original maps onto its `model0.` / `modelX_Y.` Sequential prefixes (util.transfer). Here
the convs are registered under those bare names in the original's order, so `state_dict()` is the
checkpoint's key list, in order, and loading is a strict key-for-key match.

`width_divisor` divides every hidden channel count (64/128/256/512 and the 128 trunk channels inside
the 185 stage input); the 3 input and the 38/19 output channels stay. 1 is the real network; larger
divisors make small stand-ins with the same wiring.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vton.errors import CheckpointError

PAF_CHANNELS = 38
HEATMAP_CHANNELS = 19
RECIPE_SEED = 20261126

# (name, in, out, kernel, padding) in the original's order; "pool" entries are 2x2/2 max-pools.
# Channel counts are those of the real network; `_scaled` divides the hidden ones.
_TRUNK: list[tuple[str, int, int, int, int] | str] = [
    ("conv1_1", 3, 64, 3, 1),
    ("conv1_2", 64, 64, 3, 1),
    "pool",
    ("conv2_1", 64, 128, 3, 1),
    ("conv2_2", 128, 128, 3, 1),
    "pool",
    ("conv3_1", 128, 256, 3, 1),
    ("conv3_2", 256, 256, 3, 1),
    ("conv3_3", 256, 256, 3, 1),
    ("conv3_4", 256, 256, 3, 1),
    "pool",
    ("conv4_1", 256, 512, 3, 1),
    ("conv4_2", 512, 512, 3, 1),
    ("conv4_3_CPM", 512, 256, 3, 1),
    ("conv4_4_CPM", 256, 128, 3, 1),
]
_TRUNK_OUT = 128
_STAGE_IN = PAF_CHANNELS + HEATMAP_CHANNELS + _TRUNK_OUT  # 185, the trunk part divided


def _stage1(branch: int, out: int) -> list[tuple[str, int, int, int, int]]:
    return [
        (f"conv5_1_CPM_L{branch}", 128, 128, 3, 1),
        (f"conv5_2_CPM_L{branch}", 128, 128, 3, 1),
        (f"conv5_3_CPM_L{branch}", 128, 128, 3, 1),
        (f"conv5_4_CPM_L{branch}", 128, 512, 1, 0),
        (f"conv5_5_CPM_L{branch}", 512, out, 1, 0),
    ]


def _stage_n(stage: int, branch: int, out: int) -> list[tuple[str, int, int, int, int]]:
    s = f"stage{stage}_L{branch}"
    return [
        (f"Mconv1_{s}", _STAGE_IN, 128, 7, 3),
        (f"Mconv2_{s}", 128, 128, 7, 3),
        (f"Mconv3_{s}", 128, 128, 7, 3),
        (f"Mconv4_{s}", 128, 128, 7, 3),
        (f"Mconv5_{s}", 128, 128, 7, 3),
        (f"Mconv6_{s}", 128, 128, 1, 0),
        (f"Mconv7_{s}", 128, out, 1, 0),
    ]


# The original's no_relu_layers, verbatim: Mconv7_stage6_L1 twice, Mconv7_stage6_L2 missing.
NO_RELU = frozenset(
    [
        "conv5_5_CPM_L1", "conv5_5_CPM_L2", "Mconv7_stage2_L1",
        "Mconv7_stage2_L2", "Mconv7_stage3_L1", "Mconv7_stage3_L2",
        "Mconv7_stage4_L1", "Mconv7_stage4_L2", "Mconv7_stage5_L1",
        "Mconv7_stage5_L2", "Mconv7_stage6_L1", "Mconv7_stage6_L1",
    ]
)  # fmt: skip


def _branch_layers(branch: int, out: int) -> list[list[tuple[str, int, int, int, int]]]:
    """Stages 1..6 of one branch (1: PAFs, 2: heatmaps)."""
    return [_stage1(branch, out)] + [_stage_n(s, branch, out) for s in range(2, 7)]


def _scaled(channels: int, divisor: int, fixed: frozenset[int]) -> int:
    return channels if channels in fixed else channels // divisor


class BodyPoseNet(nn.Module):
    """`bodypose_model` with bare checkpoint key names; `forward(x) -> (paf, heatmap)`.

    x: (N, 3, H, W) float32 (BGR / 256 - 0.5); outputs (N, 38, H/8, W/8) and (N, 19, H/8, W/8).
    """

    def __init__(self, width_divisor: int = 1) -> None:
        super().__init__()
        if not isinstance(width_divisor, int) or width_divisor < 1 or 64 % width_divisor:
            raise ValueError(f"width_divisor must divide 64, got {width_divisor!r}")
        self.width_divisor = width_divisor
        d = width_divisor
        trunk_out = _TRUNK_OUT // d
        stage_in = PAF_CHANNELS + HEATMAP_CHANNELS + trunk_out

        def conv(name: str, cin: int, cout: int, k: int, pad: int, io: frozenset[int]) -> str:
            cin = stage_in if cin == _STAGE_IN else _scaled(cin, d, io)
            cout = _scaled(cout, d, io)
            self.add_module(name, nn.Conv2d(cin, cout, kernel_size=k, stride=1, padding=pad))
            return name

        # Trunk first, then every L1 stage, then every L2 stage: the original's registration order
        # (model0, model1_1..model6_1, model1_2..model6_2), hence the checkpoint's key order.
        self._trunk: list[str | None] = []
        for layer in _TRUNK:
            if isinstance(layer, str):  # "pool"
                self._trunk.append(None)
            else:
                self._trunk.append(conv(*layer, io=frozenset({3})))
        io_paf = frozenset({PAF_CHANNELS})
        io_heat = frozenset({HEATMAP_CHANNELS})
        self._paf_stages = [
            [conv(*layer, io=io_paf) for layer in stage]
            for stage in _branch_layers(1, PAF_CHANNELS)
        ]
        self._heat_stages = [
            [conv(*layer, io=io_heat) for layer in stage]
            for stage in _branch_layers(2, HEATMAP_CHANNELS)
        ]

    def _run(self, names: list[str], x: torch.Tensor) -> torch.Tensor:
        for name in names:
            x = getattr(self, name)(x)
            if name not in NO_RELU:
                x = F.relu(x)
        return x

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for name in self._trunk:
            if name is None:
                x = F.max_pool2d(x, kernel_size=2, stride=2, padding=0)
            else:
                x = F.relu(getattr(self, name)(x))
        trunk = x
        paf = self._run(self._paf_stages[0], trunk)
        heat = self._run(self._heat_stages[0], trunk)
        for paf_names, heat_names in zip(self._paf_stages[1:], self._heat_stages[1:], strict=True):
            stage_in = torch.cat([paf, heat, trunk], 1)
            paf = self._run(paf_names, stage_in)
            heat = self._run(heat_names, stage_in)
        return paf, heat


def random_body_pose_state(
    width_divisor: int = 1, seed: int = RECIPE_SEED
) -> dict[str, torch.Tensor]:
    """Seeded random weights in the network's layout: the openpose README's numpy recipe.

    One RandomState; tensors in the network's (= keys.json's) order; a weight of shape
    (out, in, kh, kw) is float32 standard normal times float32(sqrt(2 / (in*kh*kw))), a bias float32
    standard normal times float32(0.01). width_divisor=1 with the default seed reproduces
    keys.json's hashes.
    """
    shapes = {k: tuple(v.shape) for k, v in BodyPoseNet(width_divisor).state_dict().items()}
    rs = np.random.RandomState(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in shapes.items():
        if key.endswith(".weight"):
            fan_in = shape[1] * shape[2] * shape[3]
            scale = np.float32(1.0 * math.sqrt(2 / fan_in))
        else:
            scale = np.float32(0.01)
        v = rs.standard_normal(size=shape).astype(np.float32) * scale
        state[key] = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
    return state


def save_body_pose_checkpoint(path: Path, state: Mapping[str, torch.Tensor]) -> None:
    """Writes `state` as `body_pose_model.pth` stores it: torch.save of a plain dict of tensors."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu().contiguous() for k, v in state.items()}, path)


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: OpenPose body checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and torch errors all mean the same to the caller
        raise CheckpointError(f"{path}: cannot read the OpenPose body checkpoint: {e}") from e
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError(f"{path}: not a plain dict of tensors (body_pose_model.pth layout)")
    return dict(state)


def _infer_width_divisor(path: Path, state: Mapping[str, torch.Tensor]) -> int:
    w = state.get("conv1_1.weight")
    if w is None:
        raise CheckpointError(f"{path}: missing key conv1_1.weight")
    if w.ndim != 4 or w.shape[0] < 1 or 64 % w.shape[0]:
        raise CheckpointError(
            f"{path}: conv1_1.weight has shape {tuple(w.shape)}; its out channels must divide 64"
        )
    return 64 // w.shape[0]


def load_body_pose_net(path: Path, device: str | torch.device = "cpu") -> BodyPoseNet:
    """The network from a `body_pose_model.pth`-style file, strictly: every key present, no extra
    key, every shape right (CheckpointError names the file and the keys). Eval mode, fp32, on
    `device`. The width divisor comes from conv1_1.weight (64 // its out channels)."""
    path = Path(path)
    state = _read_state(path)
    net = BodyPoseNet(_infer_width_divisor(path, state))
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if wrong:
        problems.append(f"wrong shapes: {', '.join(wrong)}")
    if problems:
        raise CheckpointError(
            f"{path}: does not match the OpenPose body network "
            f"(width_divisor {net.width_divisor}): {'; '.join(problems)}"
        )
    net.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return net.to(device=device, dtype=torch.float32).eval()
