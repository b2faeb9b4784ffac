"""HumanParser (SCHP `Parsing`, SPEC §3) against every parsing/ reference case, run through the
stand-in ONNX models the case names (`qNN_<variant>_...` -> models/parsing_{atr,lip}_<variant>
.onnx) with both backends (onnxruntime, and the graphs converted to torch, here on the CPU), plus
the masks made from its output, loading errors and the centroid stand-in writer.

OpenCV 5.0 changed warpAffine to 473 x 473 (SPEC §7), so under it the LIP input differs from the
4.9 reference by up to ~0.07 and no probes.safetensors / lip_fusion_raw.npy variant exists: those
LIP values are checked loosely there, and lip_argmax / parse.png exactly against the 5.0 variants.
"""

from __future__ import annotations

import json
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import get_args

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image, ImageDraw
from safetensors.numpy import load_file

from tests.preprocess.body.reference_files import (
    OPENCV,
    case_folders,
    expected_file,
    mask_mismatches,
    parsing_variant,
    read_keypoints,
    read_png,
)
from vton.errors import CheckpointError, InvalidInput
from vton.preprocess.body.masks import CATEGORIES, mask_location
from vton.preprocess.body.parsing import (
    IMAGE_SIZE,
    Backend,
    HumanParser,
    ParsingTrace,
    center_scale,
    get_palette,
    palette_image,
    read_label_map,
    refine_upper_clothes,
)
from vton.preprocess.body.parsing_standin import (
    DEFAULT_COLOURS,
    DEMO_COLOURS,
    write_centroid_parser,
)
from vton.preprocess.body.standins import demo_person

BACKENDS = get_args(Backend)
LIP_EXACT = OPENCV < (5, 0)
PROBED = ("input", "upsampled", "logits")
RTOL = 1e-5


@pytest.fixture(scope="module")
def parsing_root(preprocess_reference_dir: Path) -> Path:
    return preprocess_reference_dir / "parsing"


@pytest.fixture(scope="module")
def traces_by_backend(parsing_root: Path) -> dict[str, dict[Path, ParsingTrace]]:
    """Every case parsed once per backend, with the stand-in model variant its folder name gives."""
    result: dict[str, dict[Path, ParsingTrace]] = {}
    for backend in BACKENDS:
        parsers: dict[str, HumanParser] = {}
        result[backend] = {}
        for case in case_folders(parsing_root):
            variant = case.name.split("_")[1]
            if variant not in parsers:
                models = parsing_root / "models"
                atr, lip = (models / f"parsing_{net}_{variant}.onnx" for net in ("atr", "lip"))
                parsers[variant] = HumanParser(atr, lip, backend=backend)
            with Image.open(case / "input_384x512.png") as image:
                result[backend][case] = parsers[variant].trace(image.convert("RGB"))
    return result


@pytest.fixture(params=BACKENDS)
def traces(
    request: pytest.FixtureRequest, traces_by_backend: dict[str, dict[Path, ParsingTrace]]
) -> dict[Path, ParsingTrace]:
    return traces_by_backend[request.param]


def _close(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    return np.abs(got - want) <= RTOL * np.maximum(1.0, np.abs(want))


def test_label_maps_match_exactly(traces: dict[Path, ParsingTrace]) -> None:
    problems = []
    for case, trace in traces.items():
        outputs = {
            "atr_argmax.png": trace.atr_argmax,
            "lip_argmax.png": trace.lip_argmax,
            "atr_refine_hole_mask_padded.png": trace.refine_hole_mask,
            "parse.png": trace.labels,
            "face_mask.png": trace.face_mask.astype(np.uint8) * 255,
        }
        for name, got in outputs.items():
            path = expected_file(case, name, parsing_variant())
            want = read_png(path)
            if got.shape != want.shape or (differ := int((got != want).sum())):
                problems.append(f"{path}: {got.shape} vs {want.shape}, {differ} px differ")
        assert trace.labels.dtype == np.uint8 and trace.labels.max() <= 18
    assert not problems, "\n".join(problems)


def test_parse_png_is_the_palette_image(traces: dict[Path, ParsingTrace], tmp_path: Path) -> None:
    for case, trace in traces.items():
        stored = Image.open(expected_file(case, "parse.png", parsing_variant()))
        image = palette_image(trace.labels)
        assert image.mode == stored.mode == "P"
        assert image.getpalette()[: 19 * 3] == stored.getpalette()[: 19 * 3] == get_palette(19)
        image.save(tmp_path / "parse.png")
        assert np.array_equal(read_label_map(tmp_path / "parse.png"), trace.labels)


def test_probes_match(traces: dict[Path, ParsingTrace]) -> None:
    problems = []
    for case, trace in traces.items():
        probes = load_file(case / "probes.safetensors")
        center, scale = center_scale()
        assert np.array_equal(probes["center"], center) and np.array_equal(probes["scale"], scale)
        for net in ("atr", "lip"):
            for what in PROBED:
                key = f"{net}_{what}"
                array = getattr(trace, key)
                assert array.shape == tuple(probes[f"{key}_shape"]), key
                got = array[tuple(probes[f"{key}_probe_index"].T)].astype(np.float64)
                want = probes[f"{key}_probe_value"]
                close = _close(got, want)
                if net == "atr" or LIP_EXACT:
                    total = array.sum(dtype=np.float64)
                    if not close.all() or not np.isclose(total, probes[f"{key}_sum"][0], rtol=1e-6):
                        problems.append(f"{case.name} {key}: {int((~close).sum())} probes differ")
                elif what == "input":  # OpenCV 5.0's 473 x 473 warp: boundary pixels move
                    assert close.mean() > 0.95 and np.abs(got - want).max() < 0.1, key
    assert not problems, "\n".join(problems)


def test_raw_network_outputs_match(traces: dict[Path, ParsingTrace]) -> None:
    compared = 0
    for case, trace in traces.items():
        for net in ("atr", "lip") if LIP_EXACT else ("atr",):
            path = case / f"{net}_fusion_raw.npy"
            if path.is_file():
                want = np.load(path)
                got = getattr(trace, f"{net}_fusion")
                assert got.shape == want.shape and _close(got, want).all(), path
                compared += 1
    if not compared:
        pytest.skip("no *_fusion_raw.npy in these cases")


def test_the_backends_agree(traces_by_backend: dict[str, dict[Path, ParsingTrace]]) -> None:
    """torch (onnx2torch) gives onnxruntime's label maps exactly and its raw output [1] within
    1e-5, on every case and for both networks (LIP has no stored raw output under OpenCV 5.0)."""
    torch_traces = traces_by_backend["torch"]
    for case, want in traces_by_backend["onnxruntime"].items():
        got = torch_traces[case]
        for key in ("atr_argmax", "lip_argmax", "refine_hole_mask", "labels"):
            assert np.array_equal(getattr(got, key), getattr(want, key)), f"{case.name} {key}"
        for key in ("atr_fusion", "lip_fusion"):
            assert _close(getattr(got, key), getattr(want, key)).all(), f"{case.name} {key}"


def test_masks_from_the_parse_match(parsing_root: Path) -> None:
    problems = []
    for case in case_folders(parsing_root):
        parse = Image.open(expected_file(case, "parse.png", parsing_variant()))
        keypoints = read_keypoints(case)
        for category in CATEGORIES:
            mask, gray = mask_location("hd", category, parse, keypoints, original=True)
            problems += mask_mismatches(case, f"e2e_hd_{category}", mask, gray, parsing_variant())
    assert not problems, "\n".join(problems)


def test_hole_fill_keeps_large_holes_fills_small_ones_and_wraps_enclosed_arms() -> None:
    """refine_hole (SPEC §3): holes > 2000 px keep their labels, smaller ones become upper
    clothes (4); an arm inside a kept hole's contour wraps 255 + 1 = 0 and becomes 4 too."""
    argmax = np.zeros((512, 384), np.int64)
    argmax[100:400, 60:320] = 4
    argmax[150:250, 100:200] = 0  # a 10000 px background hole ...
    argmax[190:200, 140:150] = 14  # ... with an arm island inside it
    argmax[300:320, 100:120] = 2  # a 400 px hair hole
    argmax[100:400, 330:360] = 15  # an arm beside the shirt
    labels, refine = refine_upper_clothes(argmax)
    assert refine.shape == (514, 386)
    assert (refine[151:251, 101:201][argmax[150:250, 100:200] == 0] == 255).all()
    assert (refine[191:201, 141:151] == 0).all(), "255 + 1 wrapped"
    assert (refine[101:401, 331:361] == 1).all()
    assert (labels[150:250, 100:200][argmax[150:250, 100:200] == 0] == 0).all()
    assert (labels[190:200, 140:150] == 4).all() and (labels[300:320, 100:120] == 4).all()
    assert (labels[100:400, 330:360] == 15).all()


# --- loading errors ---------------------------------------------------------------------------


def _graph_model(path: Path, size: int, outputs: list[int], pool: str = "AveragePool") -> Path:
    """A tiny ONNX model: input `x` [1, 3, size, size], outputs [1, C, 8, 8] (C from `outputs`)."""
    names = [f"out{i}" for i in range(len(outputs))]
    nodes = [
        helper.make_node(pool, ["x"], ["p"], kernel_shape=[size // 8] * 2, strides=[size // 8] * 2),
        *[helper.make_node("Conv", ["p", f"w{i}"], [n]) for i, n in enumerate(names)],
    ]
    weights = [
        onnx.numpy_helper.from_array(np.ones((c, 3, 1, 1), np.float32), f"w{i}")
        for i, c in enumerate(outputs)
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
        [
            helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, c, 8, 8])
            for n, c in zip(names, outputs, strict=True)
        ],
        weights,
    )
    return _save(graph, path)


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def standins(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("standin")
    write_centroid_parser(folder / "parsing_atr.onnx", "atr")
    write_centroid_parser(folder / "parsing_lip.onnx", "lip")
    return folder / "parsing_atr.onnx", folder / "parsing_lip.onnx"


@pytest.mark.parametrize("backend", BACKENDS)
def test_missing_and_unreadable_models_name_the_file(standins, tmp_path: Path, backend) -> None:
    atr, lip = standins
    with pytest.raises(CheckpointError, match=r"nowhere\.onnx.*not found"):
        HumanParser(tmp_path / "nowhere.onnx", lip, backend=backend)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf at all")
    with pytest.raises(CheckpointError, match=r"garbage\.onnx.*cannot load"):
        HumanParser(atr, garbage, backend=backend)


def test_a_graph_onnx2torch_cannot_convert_names_the_file(standins, tmp_path: Path) -> None:
    """LpPool runs in onnxruntime but has no onnx2torch converter."""
    lp_pool = _graph_model(tmp_path / "lp.onnx", 512, [18, 18, 2], pool="LpPool")
    HumanParser(lp_pool, standins[1], backend="onnxruntime")
    with pytest.raises(CheckpointError, match=r"lp\.onnx: onnx2torch cannot convert the ATR"):
        HumanParser(lp_pool, standins[1], backend="torch")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("slot", "size", "outputs", "problem"),
    [
        ("atr", 473, [18, 18, 2], r"input shape"),  # the LIP size in the ATR slot
        ("lip", 512, [20, 20, 2], r"input shape"),
        ("atr", 512, [18], r"1 output"),
        ("atr", 512, [18, 20, 2], r"output \[1\] shape"),  # LIP's channel count
        ("lip", 473, [20, 18, 2], r"output \[1\] shape"),
    ],
)
def test_wrong_signatures_are_checkpoint_errors(
    standins, tmp_path, slot, size, outputs, problem, backend
):
    atr, lip = standins
    wrong = _graph_model(tmp_path / "wrong.onnx", size, outputs)
    paths = (wrong, lip) if slot == "atr" else (atr, wrong)
    with pytest.raises(
        CheckpointError, match=rf"wrong\.onnx: not an SCHP {slot.upper()}.*{problem}"
    ):
        HumanParser(*paths, backend=backend)


def test_the_input_name_is_read_from_the_model(standins, tmp_path: Path) -> None:
    """`x`, not input.1, is fed; a model with the right sizes loads (and its output [1] is used)."""
    parser = HumanParser(_graph_model(tmp_path / "a.onnx", 512, [18, 18, 2]), standins[1])
    assert parser.atr.input_name == "x"


def test_images_of_the_wrong_size_or_mode_are_refused(standins) -> None:
    parser = HumanParser(*standins)
    for image in (Image.new("RGB", (768, 1024)), Image.new("L", (384, 512))):
        with pytest.raises(InvalidInput, match="image"):
            parser(image)


def test_the_cpu_runs_onnxruntime_by_default(standins) -> None:
    parser = HumanParser(*standins)
    assert parser.atr.session.get_providers() == ["CPUExecutionProvider"]
    assert parser.lip.session.get_providers() == ["CPUExecutionProvider"]


def _schp_ops_model(path: Path, size: int, classes: int, resize: str) -> Path:
    """A small graph with every op type of the full-size SCHP export (bench/schp_onnx.py):
    max-pooled input; a corner of it (Slice) resized back bilinearly (`resize` coordinates) to
    sizes taken from Shape/Slice/Concat; plus its mean (ReduceMean); then LeakyRelu, Relu and
    random 1x1 convs to the three outputs."""
    n = size // 4
    const = {
        "starts": np.zeros(2, np.int64),
        "half": np.array([n // 2, n // 2], np.int64),
        "axes": np.array([2, 3], np.int64),
        "hw_at": np.array([2], np.int64),
        "hw_end": np.array([4], np.int64),
        "nc": np.array([1, 3], np.int64),
        "empty": np.zeros(0, np.float32),
    }
    nodes = [
        *[helper.make_node("Constant", [], [k], value=onnx.numpy_helper.from_array(v, k))
          for k, v in const.items()],
        helper.make_node("MaxPool", ["input.1"], ["p"], kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("Slice", ["p", "starts", "half", "axes"], ["corner"]),
        helper.make_node("Shape", ["p"], ["shape"]),
        helper.make_node("Slice", ["shape", "hw_at", "hw_end"], ["hw"]),
        helper.make_node("Concat", ["nc", "hw"], ["sizes"], axis=0),
        helper.make_node("Resize", ["corner", "empty", "empty", "sizes"], ["big"], mode="linear",
                         coordinate_transformation_mode=resize),
        helper.make_node("ReduceMean", ["p"], ["mean"], axes=[2, 3], keepdims=1),
        helper.make_node("Add", ["big", "mean"], ["sum"]),
        helper.make_node("LeakyRelu", ["sum"], ["leaky"], alpha=0.01),
        helper.make_node("Relu", ["sum"], ["relu"]),
        helper.make_node("Concat", ["leaky", "relu"], ["features"], axis=1),
        *[helper.make_node("Conv", ["features", f"w{i}"], [f"out{i}"]) for i in range(3)],
    ]  # fmt: skip
    rng = np.random.default_rng(size)
    weights = [
        onnx.numpy_helper.from_array(rng.standard_normal((c, 6, 1, 1)).astype(np.float32), f"w{i}")
        for i, c in enumerate((classes, classes, 2))
    ]
    graph = helper.make_graph(
        nodes,
        "schp_ops",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, size, size])],
        [
            helper.make_tensor_value_info(f"out{i}", TensorProto.FLOAT, [1, c, n, n])
            for i, c in enumerate((classes, classes, 2))
        ],
        weights,
    )
    return _save(graph, path)


def test_the_torch_backend_runs_the_schp_ops_as_onnxruntime_quietly(tmp_path: Path) -> None:
    """onnx2torch's Resize warning (align_corners is exact) and torch's warning about its Slice
    indexing are silenced; output [1] agrees with onnxruntime within 1e-5 of its scale."""
    models = [
        _schp_ops_model(tmp_path / f"{net.lower()}.onnx", size, classes, "align_corners")
        for net, size, classes in (("ATR", 512, 18), ("LIP", 473, 20))
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        converted = HumanParser(*models, backend="torch")
        reference = HumanParser(*models, backend="onnxruntime")
        rng = np.random.default_rng(0)
        for got, want in ((converted.atr, reference.atr), (converted.lip, reference.lip)):
            x = rng.standard_normal((want.net.size, want.net.size, 3)).astype(np.float32)
            expected = want.fusion(x).numpy()  # ~10, so 1e-5 of the output's scale
            atol = 1e-5 * np.abs(expected).max()
            np.testing.assert_allclose(got.fusion(x).numpy(), expected, rtol=0, atol=atol)
    assert not [w for w in caught if "onnx2torch" in w.filename], [str(w) for w in caught]


def test_an_inexact_resize_keeps_onnx2torch_s_warning(tmp_path: Path) -> None:
    """torch has no bilinear resize in ONNX's "asymmetric" coordinates: that warning stays."""
    atr = _schp_ops_model(tmp_path / "atr.onnx", 512, 18, "asymmetric")
    lip = _schp_ops_model(tmp_path / "lip.onnx", 473, 20, "align_corners")
    with pytest.warns(UserWarning, match='"asymmetric" and "align_corners"'):
        HumanParser(atr, lip, backend="torch")


# --- the centroid stand-in --------------------------------------------------------------------


def _person_labels() -> np.ndarray:
    """A front-view person in parse labels (the person's right side on the image's left)."""
    canvas = Image.new("L", (384, 512), 0)
    draw = ImageDraw.Draw(canvas)
    draw.ellipse([150, 28, 234, 112], fill=2)  # hair
    draw.ellipse([160, 48, 224, 132], fill=11)  # face
    draw.rectangle([176, 128, 208, 152], fill=18)  # neck
    draw.rectangle([130, 150, 254, 292], fill=4)  # upper clothes
    draw.rectangle([96, 156, 126, 300], fill=15)  # right arm
    draw.rectangle([258, 156, 288, 300], fill=14)  # left arm
    draw.rectangle([140, 292, 188, 440], fill=6)  # pants
    draw.rectangle([196, 292, 244, 440], fill=6)
    draw.rectangle([144, 440, 184, 466], fill=13)  # right leg
    draw.rectangle([200, 440, 240, 466], fill=12)  # left leg
    draw.rectangle([136, 466, 188, 488], fill=10)  # right shoe
    draw.rectangle([196, 466, 248, 488], fill=9)  # left shoe
    return np.array(canvas)


def _paint(labels: np.ndarray, colours) -> Image.Image:
    lut = np.zeros((256, 3), np.uint8)
    for label, rgb in colours.items():
        lut[label] = rgb
    return Image.fromarray(lut[labels])


def test_a_person_in_the_demo_colours_parses_into_its_labels(standins) -> None:
    labels = _person_labels()
    assert set(np.unique(labels)) == set(DEMO_COLOURS)
    parsed = HumanParser(*standins)(_paint(labels, DEMO_COLOURS))
    assert (parsed == labels).mean() > 0.95
    for label in DEMO_COLOURS:
        drawn = labels == label
        assert (parsed[drawn] == label).mean() > 0.6, label
    assert (parsed[labels == 18] == 18).mean() > 0.6
    # Elsewhere "neck" appears only as thin outlines along borders: the two networks pool on
    # different grids (512 vs 473), so at a face border ATR can still say face where LIP does not.
    edges = cv2.morphologyEx(labels, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    near_border = cv2.dilate(edges.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    assert (near_border | (labels == 18))[parsed == 18].all()


def test_colours_can_be_overridden(tmp_path: Path) -> None:
    shirt = (20, 220, 20)
    write_centroid_parser(tmp_path / "atr.onnx", "atr", {4: shirt})
    write_centroid_parser(tmp_path / "lip.onnx", "lip", {4: shirt})
    labels = _person_labels()
    parsed = HumanParser(tmp_path / "atr.onnx", tmp_path / "lip.onnx")(
        _paint(labels, DEMO_COLOURS | {4: shirt})
    )
    assert (parsed[labels == 4] == 4).mean() > 0.9


def test_standin_signature(standins) -> None:
    import onnxruntime as ort

    for path, size, classes, pooled in zip(standins, (512, 473), (18, 20), (128, 119), strict=True):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (inp,) = session.get_inputs()
        assert (inp.name, inp.shape) == ("input.1", [1, 3, size, size])
        shapes = [o.shape for o in session.get_outputs()]
        assert shapes == [[1, classes, pooled, pooled]] * 2 + [[1, 2, pooled, pooled]]


def test_standin_prototypes_are_the_reference_standins(standins, parsing_root: Path) -> None:
    colours = json.loads((parsing_root / "models" / "models.json").read_text())["parse_rgb"]
    assert {int(k): tuple(v) for k, v in colours.items()} == DEFAULT_COLOURS
    for path, kind in zip(standins, ("atr", "lip"), strict=True):
        ours = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}
        reference = onnx.load(parsing_root / "models" / f"parsing_{kind}_centroid.onnx")
        theirs = {t.name: onnx.numpy_helper.to_array(t) for t in reference.graph.initializer}
        np.testing.assert_allclose(ours["prototype_weight"], theirs["Wc"], rtol=1e-6)
        np.testing.assert_allclose(ours["prototype_bias"], theirs["bc"], rtol=1e-6)


def test_atr_beside_lip_parses_as_one_after_the_other(standins) -> None:
    """What a GPU parser does (ATR on a thread beside LIP) gives the sequential parse."""
    image = demo_person().resize(IMAGE_SIZE, Image.Resampling.BICUBIC)
    parser = HumanParser(*standins, backend="torch")
    sequential = parser(image)
    parser._beside = ThreadPoolExecutor(1)
    assert np.array_equal(parser(image), sequential)
