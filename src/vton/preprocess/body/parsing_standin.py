"""Small stand-in SCHP parsing models (ONNX) with the real signature, for demos and tests.

The real SCHP graphs (ResNet-101 CE2P, ~255 MB each) cannot be shipped; like the reference
stand-ins `parsing_{atr,lip}_centroid.onnx` (preprocess/parsing/README.md), these classify each
4 x 4 block (average pooling, ceil mode: SCHP's stride-4 output size) by its nearest colour
prototype, so a person drawn in the prototype colours parses into the drawn labels:

    logit_c(x) = (2 mu_c . x - |mu_c|^2) / T,   mu_c = the prototype colour of class c
                 in the network's input space (BGR, ToTensor, Normalize), T = 0.5.

Signature (what HumanParser relies on): input `input.1` float32 [1, 3, S, S] (ATR 512, LIP 473);
three outputs by position, [1, C, S', S'] (C = 18 / 20, S' = 128 / 119): [0] parsing logits
(here the negated scores, so a reader taking the wrong output gets a visibly wrong parse),
[1] fusion logits (the scores), [2] edge logits (2 channels of zeros).

Colours are given per parse label (0..18); LIP classes take the colour of the matching ATR
label, LIP class 10 the neck's (18), and LIP-only classes (glove, coat, socks) fixed colours, as
in the reference stand-ins (whose random 3x3-conv branch is left out here).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from vton.errors import InvalidInput
from vton.preprocess.body.parsing import ATR, LIP, NORMALIZE_MEAN, NORMALIZE_STD

RGB = tuple[int, int, int]

DEFAULT_COLOURS: dict[int, RGB] = {
    0: (0, 0, 0),
    1: (128, 0, 255),
    2: (90, 50, 0),
    3: (0, 128, 128),
    4: (230, 30, 30),
    5: (30, 130, 230),
    6: (20, 40, 140),
    7: (170, 40, 170),
    8: (140, 110, 40),
    9: (0, 90, 0),
    10: (60, 160, 60),
    11: (250, 200, 150),
    12: (250, 140, 60),
    13: (180, 90, 60),
    14: (255, 255, 120),
    15: (120, 200, 255),
    16: (120, 60, 90),
    17: (255, 120, 200),
    18: (230, 215, 155),
}
"""Prototype colour per parse label: the reference stand-ins' (parsing/models/models.json).
The neck (18) is nearest to face (11) among the ATR prototypes, and LIP has it as class 10."""

DEMO_LABELS = (0, 2, 11, 18, 4, 6, 14, 15, 12, 13, 9, 10)
DEMO_COLOURS: dict[int, RGB] = {label: DEFAULT_COLOURS[label] for label in DEMO_LABELS}
"""Colours to draw the demo person in (parse label -> RGB): background, hair, face, neck, upper
clothes, pants, left/right arm, left/right leg, left/right shoe."""

ATR_TO_LIP = {
    0: 0, 1: 1, 2: 2, 3: 4, 4: 5, 5: 12, 6: 9, 7: 6, 9: 18, 10: 19,
    11: 13, 12: 16, 13: 17, 14: 14, 15: 15, 17: 11, 18: 10,
}  # fmt: skip
"""LIP class of each parse label (18 = neck -> LIP 10); ATR's belt (8) and bag (16) have none."""
LIP_ONLY: dict[int, RGB] = {3: (0, 255, 0), 7: (255, 0, 255), 8: (0, 0, 255)}
"""Glove, coat, socks: LIP classes without a parse label."""
TEMPERATURE = 0.5
OPSET, IR_VERSION = 11, 7  # as the reference stand-ins; loads in onnxruntime >= 1.16


def class_colours(kind: Literal["atr", "lip"], colours: Mapping[int, RGB]) -> np.ndarray:
    """(C, 3) RGB prototype of every class of the `kind` network."""
    if kind == "atr":
        return np.array([colours[label] for label in range(ATR.classes)], dtype=np.float64)
    by_class = {lip: colours[label] for label, lip in ATR_TO_LIP.items()} | LIP_ONLY
    return np.array([by_class[c] for c in range(LIP.classes)], dtype=np.float64)


def write_centroid_parser(
    path: Path, kind: Literal["atr", "lip"], colours: Mapping[int, RGB] | None = None
) -> None:
    """Writes the `kind` stand-in to `path`; `colours` (parse label -> RGB) override defaults."""
    if kind not in ("atr", "lip"):
        raise InvalidInput(f"kind: {kind!r} is not 'atr' or 'lip'")
    net = ATR if kind == "atr" else LIP
    rgb = class_colours(kind, {**DEFAULT_COLOURS, **(colours or {})})
    mu = (rgb[:, ::-1] / 255.0 - np.array(NORMALIZE_MEAN)) / np.array(NORMALIZE_STD)
    weight = (2.0 * mu / TEMPERATURE).reshape(net.classes, 3, 1, 1)
    bias = -(mu**2).sum(axis=1) / TEMPERATURE
    out = -(-net.size // 4)

    def tensor(name: str, shape: list[int]) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    initializers = [
        numpy_helper.from_array(weight.astype(np.float32), "prototype_weight"),
        numpy_helper.from_array(bias.astype(np.float32), "prototype_bias"),
        numpy_helper.from_array(np.zeros((2, 3, 1, 1), np.float32), "edge_weight"),
    ]
    nodes = [
        helper.make_node(
            "AveragePool",
            ["input.1"],
            ["pooled"],
            kernel_shape=[4, 4],
            strides=[4, 4],
            ceil_mode=1,
            count_include_pad=0,
        ),
        helper.make_node("Conv", ["pooled", "prototype_weight", "prototype_bias"], ["fusion"]),
        helper.make_node("Neg", ["fusion"], ["parsing"]),
        helper.make_node("Conv", ["pooled", "edge_weight"], ["edge"]),
    ]
    graph = helper.make_graph(
        nodes,
        f"schp_{kind}_centroid_standin",
        [tensor("input.1", [1, 3, net.size, net.size])],
        [
            tensor("parsing", [1, net.classes, out, out]),
            tensor("fusion", [1, net.classes, out, out]),
            tensor("edge", [1, 2, out, out]),
        ],
        initializers,
    )
    model = helper.make_model(
        graph, producer_name="vton", opset_imports=[helper.make_opsetid("", OPSET)]
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
