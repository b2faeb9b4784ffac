"""SCHP human parsing, reproducing IDM-VTON's `Parsing` (SPEC §3).

Sources (IDM-VTON 0d5f3ec): preprocess/humanparsing/run_parsing.py, parsing_api.py
(`onnx_inference`, `hole_fill`, `refine_hole`, `get_palette`), datasets/simple_extractor_dataset.py
and utils/transforms.py (`get_affine_transform`, `transform_logits`).

    parser = HumanParser(atr_onnx, lip_onnx, device="cuda")
    labels = parser(image_384x512)           # (512, 384) uint8, labels 0..18 (18 = neck)
    trace = parser.trace(image_384x512)      # the same run with every intermediate kept

Each of the two networks sees the BGR image warped to S x S (ATR 512, LIP 473) and normalised; only
output [1] (the fusion logits) is used, upsampled (bilinear, align_corners=True) to S x S and warped
back to 384 x 512. ATR's argmax gets the upper-clothes hole fill; LIP only decides the neck.

The networks run in onnxruntime on the CPU. On a GPU they run in onnxruntime's CUDA provider where
it loads (the separate onnxruntime-gpu package), else as the ONNX graphs converted to torch by
onnx2torch, run by the torch the service has anyway, in fp32 under the process's TF32 setting
(not switched here: the flag is process-wide and the engine's fp32 VAE shares it). On an H200,
TF32 left the full-size random models' labels unchanged and was not faster; bf16 and fp16
changed stand-in labels and were not faster either. One pre- and post-processing path serves
both backends.

Reproduced as the original does it, on purpose:
* `refine_hole` adds the arm mask to the kept-hole mask in uint8, so an arm pixel inside a kept
  hole's contour wraps 255 + 1 = 0 and becomes upper clothes (4).
* The hole mask reaches `findContours` as int32: the original builds it from int64 arrays, which
  OpenCV's Python binding converts to int32.
Deliberate deviations: none in the arithmetic. The networks may run on CUDA (the original pins
CPU), and in torch their output differs from onnxruntime's by float rounding only; outputs are
taken by position and the input name is read from the model (the original hard-codes "input.1"),
and only output [1] is computed; ToTensor/Normalize are the same float32 operations in numpy.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from PIL import Image

from vton.errors import CheckpointError, InvalidInput
from vton.preprocess.body.masks import fill_holes

logger = logging.getLogger(__name__)

Backend = Literal["onnxruntime", "torch"]
"""How the networks run: onnxruntime sessions, or the graphs converted to torch (onnx2torch)."""
ORT_CUDA = "CUDAExecutionProvider"
ORT_CPU = "CPUExecutionProvider"

IMAGE_SIZE = (384, 512)
"""The size (width, height) `Parsing` is called with (SPEC §0)."""
NUM_LABELS = 19
"""ATR's 18 labels plus neck (18)."""
UPPER_CLOTHES, FACE, LEFT_ARM, RIGHT_ARM, NECK = 4, 11, 14, 15, 18
LIP_FACE = 13
KEPT_HOLE_AREA = 2000
"""`refine_hole` keeps (as their own labels) holes whose contour area exceeds this."""

NORMALIZE_MEAN = (0.406, 0.456, 0.485)
NORMALIZE_STD = (0.225, 0.224, 0.229)
"""transforms.Normalize of the BGR input (parsing_api.onnx_inference L122-125)."""
MEAN_BGR = np.array(NORMALIZE_MEAN, dtype=np.float32)
STD_BGR = np.array(NORMALIZE_STD, dtype=np.float32)


@dataclass(frozen=True)
class _Net:
    """One SCHP network: its input size S and its class count."""

    name: str
    size: int
    classes: int


ATR = _Net("ATR", 512, 18)
LIP = _Net("LIP", 473, 20)


def get_palette(num_cls: int = NUM_LABELS) -> list[int]:
    """SCHP's colour map (parsing_api.get_palette): label bits spread over the RGB high bits."""
    palette = [0] * (num_cls * 3)
    for j in range(num_cls):
        lab, i = j, 0
        while lab:
            palette[j * 3 + 0] |= ((lab >> 0) & 1) << (7 - i)
            palette[j * 3 + 1] |= ((lab >> 1) & 1) << (7 - i)
            palette[j * 3 + 2] |= ((lab >> 2) & 1) << (7 - i)
            i += 1
            lab >>= 3
    return palette


def palette_image(labels: np.ndarray) -> Image.Image:
    """The label map as `Parsing` returns it (and parse.png stores it): mode P, get_palette(19)."""
    image = Image.fromarray(np.asarray(labels, dtype=np.uint8))
    image.putpalette(get_palette(NUM_LABELS))
    return image


def read_label_map(path: Path) -> np.ndarray:
    """The labels of a parse.png (mode P or L): its pixel values, (H, W) uint8."""
    with Image.open(path) as image:
        if image.mode not in ("P", "L"):
            raise InvalidInput(f"{path}: a label map is mode P or L, not {image.mode}")
        return np.array(image)


def center_scale() -> tuple[np.ndarray, np.ndarray]:
    """The dataset's person center and scale for the whole 384 x 512 image (float32).

    `_box2cs([0, 0, w-1, h-1])`: center ((w-1)/2, (h-1)/2); at aspect ratio 1 the scale is
    max(w-1, h-1) on both axes, so (191.5, 255.5) and (511, 511).
    """
    width, height = IMAGE_SIZE
    side = max(width - 1, height - 1)
    center = np.array([(width - 1) * 0.5, (height - 1) * 0.5], dtype=np.float32)
    return center, np.array([side, side], dtype=np.float32)


def affine_matrix(size: int, *, inverse: bool = False) -> np.ndarray:
    """`get_affine_transform(center, scale, 0, (size, size), inv)` (utils/transforms.py).

    The original's three point pairs: the center, the center moved up by scale/2, and the third
    point rotated about the second, mapped to the output's center, top middle and corner. All
    are exact in float32, so cv2.getAffineTransform returns the original's matrix.
    """
    (cx, cy), (side, _) = center_scale()
    half, mid = side * 0.5, (size - 1) * 0.5
    src = np.array([[cx, cy], [cx, cy - half], [cx - half, cy - half]], dtype=np.float32)
    dst = np.array([[mid, mid], [mid, 0.0], [0.0, 0.0]], dtype=np.float32)
    return cv2.getAffineTransform(dst, src) if inverse else cv2.getAffineTransform(src, dst)


def network_input(bgr: np.ndarray, size: int) -> np.ndarray:
    """The S x S x 3 float32 network input (HWC): warpAffine, then ToTensor and Normalize (BGR)."""
    warped = cv2.warpAffine(
        bgr,
        affine_matrix(size),
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    return (warped.astype(np.float32) / np.float32(255) - MEAN_BGR) / STD_BGR


def upsample(fusion: torch.Tensor, size: int) -> np.ndarray:
    """`nn.Upsample(size, bilinear, align_corners=True)` of output [1] (1, C, S', S') where it
    ran, then output[1][0] as the original takes it: (C, S, S) float32 on the CPU."""
    upsampled = F.interpolate(fusion, size=(size, size), mode="bilinear", align_corners=True)
    return upsampled[0].cpu().numpy()


def transform_logits(logits: np.ndarray, size: int) -> np.ndarray:
    """The (C, S, S) logits warped back to the image frame, one channel at a time: (C, 512, 384).

    The original warps the channels of an HWC array; the per-channel warps are the same.
    """
    inverse = affine_matrix(size, inverse=True)
    return np.stack(
        [
            cv2.warpAffine(
                channel,
                inverse,
                IMAGE_SIZE,
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0,
            )
            for channel in logits
        ]
    )


def refine_upper_clothes(argmax: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ATR hole fill (parsing_api.onnx_inference L142-156) of an argmax map.

    Returns (labels, refine mask): the labels without the padding, and `refine_hole`'s mask on
    the 1-px padded grid (255 kept hole, 1 arm, 0 elsewhere, 0 where 255 + 1 wrapped).
    """
    padded = np.pad(argmax, 1, mode="constant", constant_values=0)
    arm = ((padded == LEFT_ARM) | (padded == RIGHT_ARM)).astype(np.uint8)
    filled = fill_holes(np.where((padded == UPPER_CLOTHES) | (arm > 0), 255, 0).astype(np.uint8))
    filled_label = filled > 0  # parsing_result_filled == 4
    holes = np.where(filled_label & (padded != UPPER_CLOTHES), 255, 0).astype(np.int32)
    holes -= arm.astype(np.int32) * 255
    contours, _ = cv2.findContours(holes, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_TC89_L1)
    kept = np.zeros(padded.shape, dtype=np.uint8)
    for i, contour in enumerate(contours):
        if abs(cv2.contourArea(contour, True)) > KEPT_HOLE_AREA:
            cv2.drawContours(kept, contours, i, color=255, thickness=-1)
    refine = kept + arm  # uint8: 255 + 1 wraps to 0, as in the original
    labels = np.where(refine != 0, padded, np.where(filled_label, UPPER_CLOTHES, padded))
    return labels[1:-1, 1:-1], refine


def add_neck(atr_labels: np.ndarray, lip_argmax: np.ndarray) -> np.ndarray:
    """ATR face (11) that LIP does not call face (13) becomes neck (18)."""
    neck = (atr_labels == FACE) & (lip_argmax != LIP_FACE)
    return np.where(neck, NECK, atr_labels).astype(np.uint8)


@dataclass(frozen=True)
class ParsingTrace:
    """One parse with its intermediates, named as in the reference probes."""

    atr_input: np.ndarray  # (512, 512, 3) float32, HWC of the ONNX input
    lip_input: np.ndarray  # (473, 473, 3)
    atr_fusion: np.ndarray  # output [1], (1, 18, 128, 128)
    lip_fusion: np.ndarray  # (1, 20, 119, 119)
    atr_upsampled: np.ndarray  # (512, 512, 18), HWC view as the original holds it
    lip_upsampled: np.ndarray  # (473, 473, 20)
    atr_logits: np.ndarray  # (512, 384, 18), after transform_logits
    lip_logits: np.ndarray  # (512, 384, 20)
    atr_argmax: np.ndarray  # (512, 384), labels 0..17 before the hole fill
    refine_hole_mask: np.ndarray  # (514, 386) uint8, on the padded grid
    lip_argmax: np.ndarray  # (512, 384), LIP labels 0..19
    labels: np.ndarray  # (512, 384) uint8, the Parsing output, labels 0..18

    @property
    def face_mask(self) -> np.ndarray:
        """The original's second return value: labels == 11 (after the neck rule)."""
        return self.labels == FACE


@dataclass(frozen=True)
class _Value:
    """A graph input or output as the signature check reads it (onnxruntime's NodeArg fields)."""

    name: str
    shape: list[int | str | None]  # names or None for symbolic dims
    type: str  # "tensor(float)", ...


def _onnx_value(value: onnx.ValueInfoProto) -> _Value:
    """`value` as onnxruntime describes a graph input or output."""
    tensor = value.type.tensor_type
    shape = [
        d.dim_value if d.HasField("dim_value") else d.dim_param or None for d in tensor.shape.dim
    ]
    return _Value(
        value.name, shape, f"tensor({onnx.TensorProto.DataType.Name(tensor.elem_type)})".lower()
    )


class _Network(ABC):
    """One SCHP network file, checked against the signature of `net`; a backend runs it."""

    def __init__(self, path: Path, net: _Net, device: torch.device) -> None:
        self.path, self.net, self.device = Path(path), net, device
        if not self.path.is_file():
            raise CheckpointError(f"{path}: SCHP {net.name} parsing model not found")

    def _cannot_load(self, exc: Exception) -> CheckpointError:
        return CheckpointError(f"{self.path}: cannot load the {self.net.name} ONNX model: {exc}")

    def _fail(self, what: str) -> CheckpointError:
        return CheckpointError(f"{self.path}: not an SCHP {self.net.name} parsing model: {what}")

    def _check_signature(self, inputs: list[_Value], outputs: list[_Value]) -> None:
        size = self.net.size
        if len(inputs) != 1:
            raise self._fail(f"{len(inputs)} inputs, expected 1")
        shape = inputs[0].shape
        if len(shape) != 4 or not _dims_match(shape, (1, 3, size, size)):
            raise self._fail(f"input shape {shape}, expected [1, 3, {size}, {size}]")
        if inputs[0].type != "tensor(float)":
            raise self._fail(f"input type {inputs[0].type}, expected tensor(float)")
        if len(outputs) < 2:
            raise self._fail(f"{len(outputs)} output(s); the fusion logits are output [1]")
        fusion = outputs[1].shape
        if len(fusion) != 4 or not _dims_match(fusion[:2], (1, self.net.classes)):
            raise self._fail(f"output [1] shape {fusion}, expected [1, {self.net.classes}, H, W]")

    def fusion(self, x: np.ndarray) -> torch.Tensor:
        """Output [1] for the HWC input `x`: (1, C, S', S') float32, where the network ran."""
        out = self._run(np.ascontiguousarray(x.transpose(2, 0, 1)[None]))
        if out.ndim != 4 or out.shape[:2] != (1, self.net.classes):
            raise self._fail(f"output [1] has shape {tuple(out.shape)}")
        return out

    @abstractmethod
    def _run(self, batch: np.ndarray) -> torch.Tensor:
        """Output [1] for the NCHW float32 `batch`."""


class _OrtNetwork(_Network):
    """The network as an onnxruntime session: on the CPU, or on CUDA through its CUDA provider."""

    def __init__(self, path: Path, net: _Net, device: torch.device) -> None:
        super().__init__(path, net, device)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        cuda = [(ORT_CUDA, {"device_id": device.index or 0})] if device.type == "cuda" else []
        try:
            self.session = ort.InferenceSession(str(path), options, providers=[*cuda, ORT_CPU])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise self._cannot_load(exc) from exc
        inputs, outputs = (
            [_Value(arg.name, arg.shape, arg.type) for arg in args]
            for args in (self.session.get_inputs(), self.session.get_outputs())
        )
        self._check_signature(inputs, outputs)
        self.input_name, self.output_name = inputs[0].name, outputs[1].name

    def _run(self, batch: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.session.run([self.output_name], {self.input_name: batch})[0])


_SLICE_WARNING = "Using a non-tuple sequence for multidimensional indexing"
"""onnx2torch's Slice indexes with a list of slices, which torch (2.11 to 2.14 seen) still reads
as the tuple meant; the announced change would make a tensor of slices: an error, not wrong data."""
_RESIZE_WARNING = 'For linear and cubic interpolation in "asymmetric" and "align_corners"'
"""onnx2torch's one warning for both; torch's interpolate matches ONNX's align_corners only."""
_EXACT_RESIZES = (b"align_corners", b"half_pixel", b"pytorch_half_pixel")


def _ignore_onnx2torch_warning(message: str) -> None:
    warnings.filterwarnings("ignore", message, UserWarning, r"onnx2torch\.")


def _resizes_convert_exactly(graph: onnx.GraphProto) -> bool:
    """Whether every linear or cubic Resize maps onto torch's interpolate (align_corners or half
    pixel coordinates), so that onnx2torch's Resize warning is harmless for this graph."""
    resizes = [
        {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        for node in graph.node
        if node.op_type == "Resize"
    ]
    return all(
        attrs.get("mode", b"nearest") == b"nearest"
        or attrs.get("coordinate_transformation_mode", b"half_pixel") in _EXACT_RESIZES
        for attrs in resizes
    )


def _fold_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with its shape arithmetic folded into constants (onnxruntime's basic graph
    optimisations: constant folding, redundant-node removal, ONNX ops only), so that the sizes of
    Resize and the bounds of Slice are initializers rather than values computed on the device."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    with tempfile.TemporaryDirectory() as folder:
        options.optimized_model_filepath = str(Path(folder) / "folded.onnx")
        ort.InferenceSession(model.SerializeToString(), options, providers=[ORT_CPU])
        return onnx.load(options.optimized_model_filepath)


def _shape_arguments_on_the_cpu(module: torch.fx.GraphModule) -> None:
    """Moves the constant sizes, scales and bounds that Resize and Slice read with `tolist()`
    back to the CPU: on a GPU each such read waits for the device (~300 waits per call)."""
    for node in module.graph.nodes:
        if node.op != "call_module" or node.target is None:
            continue
        if type(module.get_submodule(node.target)).__name__ not in ("OnnxResize", "OnnxSlice"):
            continue
        for argument in node.args[1:]:
            if isinstance(argument, torch.fx.Node) and argument.op == "get_attr":
                owner, _, name = str(argument.target).rpartition(".")
                holder = module.get_submodule(owner)
                holder.register_buffer(name, getattr(holder, name).cpu())


def _convert(model: onnx.ModelProto, device: torch.device) -> torch.nn.Module:
    """onnx2torch's module of `model` (given in memory: from a path it writes beside the file)
    on `device`, its shape constants folded and kept on the CPU."""
    from onnx2torch import convert  # imports torchvision's models (~1 s): only for this backend

    with warnings.catch_warnings():
        if _resizes_convert_exactly(model.graph):
            _ignore_onnx2torch_warning(_RESIZE_WARNING)
        module = convert(_fold_constants(model)).to(device)
    _shape_arguments_on_the_cpu(module)
    return module


class _TorchNetwork(_Network):
    """The ONNX graph converted to torch by onnx2torch, output [1] alone, on a torch device."""

    def __init__(self, path: Path, net: _Net, device: torch.device) -> None:
        super().__init__(path, net, device)
        try:
            model = onnx.load(str(self.path))
        except Exception as exc:  # protobuf's DecodeError, OSError
            raise self._cannot_load(exc) from exc
        graph = model.graph
        initializers = {tensor.name for tensor in graph.initializer}
        self._check_signature(
            [_onnx_value(value) for value in graph.input if value.name not in initializers],
            [_onnx_value(value) for value in graph.output],
        )
        fusion = onnx.ValueInfoProto()
        fusion.CopyFrom(graph.output[1])
        del graph.output[:]
        graph.output.append(fusion)
        try:
            module = _convert(model, device)
        except Exception as exc:  # onnx2torch: NotImplementedError, KeyError, ...
            raise CheckpointError(
                f"{path}: onnx2torch cannot convert the {net.name} ONNX model: {exc}"
            ) from exc
        self.module = module.eval()
        # For the process, not per call: catch_warnings is not thread-safe, and ATR runs on a
        # thread beside LIP. The filter matches this message from onnx2torch's code only.
        _ignore_onnx2torch_warning(_SLICE_WARNING)

    def _run(self, batch: np.ndarray) -> torch.Tensor:
        with torch.inference_mode():
            return self.module(torch.from_numpy(batch).to(self.device))


def _open(path: Path, net: _Net, device: torch.device, backend: Backend | None) -> _Network:
    """The network on `device` run by `backend`; by default onnxruntime on the CPU and where its
    CUDA provider loads, else the graph converted to torch."""
    if backend is None:
        backend = "onnxruntime" if device.type == "cpu" else "torch"
        if device.type == "cuda" and ORT_CUDA in ort.get_available_providers():
            network = _OrtNetwork(path, net, device)
            if ORT_CUDA in network.session.get_providers():
                return network
            logger.warning("%s: onnxruntime's CUDA provider did not load; using torch", path)
    return (_TorchNetwork if backend == "torch" else _OrtNetwork)(path, net, device)


def _dims_match(dims: tuple | list, expected: tuple[int, ...]) -> bool:
    """Fixed dims equal `expected`; symbolic ones (names or None) match anything."""
    return all(not isinstance(d, int) or d == e for d, e in zip(dims, expected, strict=True))


def _hwc(chw: np.ndarray) -> np.ndarray:
    return np.moveaxis(chw, 0, 2)


class HumanParser:
    """IDM-VTON's `Parsing`: ATR + LIP SCHP networks -> (512, 384) label map with neck (18).

    `device` "cpu" runs onnxruntime; "cuda[:N]" onnxruntime's CUDA provider where it loads, else
    the graphs converted to torch on that GPU. `backend` forces one (the tests: torch on the CPU).
    """

    def __init__(
        self,
        atr_path: Path,
        lip_path: Path,
        device: str | torch.device = "cpu",
        backend: Backend | None = None,
    ) -> None:
        device = torch.device(device)
        self.atr = _open(atr_path, ATR, device, backend)
        self.lip = _open(lip_path, LIP, device, backend)
        self._beside = ThreadPoolExecutor(1, "vton-parse") if device.type == "cuda" else None
        """On a GPU ATR runs beside LIP: each one's CPU work overlaps the other's GPU work."""

    def __call__(self, image: Image.Image) -> np.ndarray:
        """The label map of a 384 x 512 RGB image: (512, 384) uint8, labels 0..18."""
        return self.trace(image).labels

    def trace(self, image: Image.Image) -> ParsingTrace:
        """The parse of `image` with every intermediate (the one code path of __call__)."""
        if not isinstance(image, Image.Image) or image.mode != "RGB" or image.size != IMAGE_SIZE:
            got = f"{image.mode} {image.size}" if isinstance(image, Image.Image) else type(image)
            raise InvalidInput(f"image: parsing needs an RGB {IMAGE_SIZE} image, got {got}")
        bgr = np.ascontiguousarray(np.asarray(image)[:, :, ::-1])
        run_atr = partial(self._run, self.atr, bgr)
        atr_running = self._beside.submit(run_atr) if self._beside is not None else None
        lip = self._run(self.lip, bgr)
        atr = atr_running.result() if atr_running is not None else run_atr()
        atr_argmax = np.argmax(atr[3], axis=0)  # first maximum, as argmax over HWC's axis 2
        lip_argmax = np.argmax(lip[3], axis=0)
        atr_labels, refine = refine_upper_clothes(atr_argmax)
        return ParsingTrace(
            atr_input=atr[0],
            lip_input=lip[0],
            atr_fusion=atr[1],
            lip_fusion=lip[1],
            atr_upsampled=_hwc(atr[2]),
            lip_upsampled=_hwc(lip[2]),
            atr_logits=_hwc(atr[3]),
            lip_logits=_hwc(lip[3]),
            atr_argmax=atr_argmax,
            refine_hole_mask=refine,
            lip_argmax=lip_argmax,
            labels=add_neck(atr_labels, lip_argmax),
        )

    @staticmethod
    def _run(
        network: _Network, bgr: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(input HWC, output [1], upsampled CHW, logits CHW in the image frame) of one network."""
        size = network.net.size
        x = network_input(bgr, size)
        fusion = network.fusion(x)
        upsampled = upsample(fusion, size)
        return x, fusion.cpu().numpy(), upsampled, transform_logits(upsampled, size)
