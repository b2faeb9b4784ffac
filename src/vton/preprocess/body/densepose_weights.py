"""DensePose weights: detectron2's model-zoo pickle read safely, converted once to safetensors.

`model_final_162be9.pkl` is a pickle `{"model": {name: float32 ndarray}, "__author__": ...}` whose
names are already detectron2 state_dict names (detectron2 unpickles it with the standard,
unrestricted loader and latin1 encoding). Here it is read by an unpickler that resolves ONLY the
globals that layout needs (numpy's array reconstruction, for numpy 1.x and 2.x pickles and
protocols 2 to 5, `_codecs.encode`, `collections.OrderedDict`); any other global is refused by
name before anything is called. The arrays must all be float32, and the key set must be exactly
the model's own (shapes included). Deliberate deviations from detectron2, which loads with
`strict=False` and only warns:
- a missing, unexpected or mis-shaped key is an error naming the file and the keys;
- the buffers 2020-era checkpoints carry (`pixel_mean`, `pixel_std`, the five
  `proposal_generator.anchor_generator.cell_anchors.N`) are accepted and dropped, but only when
  their values are the ones this model computes itself (detectron2 of that era would have loaded
  them over the config's values).
"""

from __future__ import annotations

import codecs
import collections
import hashlib
import math
import os
import pickle
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from vton.errors import CheckpointError
from vton.preprocess.body.densepose_net import (
    ANCHOR_SIZES,
    PIXEL_MEAN,
    DensePoseNet,
    cell_anchors,
)

try:  # numpy 2
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]

STEM_KEY = "backbone.bottom_up.stem.conv1.weight"

_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
    ("numpy.core.numeric", "_frombuffer"): _numeric._frombuffer,  # type: ignore[attr-defined]
    ("numpy._core.numeric", "_frombuffer"): _numeric._frombuffer,  # type: ignore[attr-defined]
    ("collections", "OrderedDict"): collections.OrderedDict,
}

# Buffers old checkpoints hold and the model derives itself: name -> the value it derives.
_OLD_EXTRAS: dict[str, torch.Tensor] = {
    "pixel_mean": torch.tensor(PIXEL_MEAN).view(3, 1, 1),
    "pixel_std": torch.ones(3, 1, 1),
    **{
        f"proposal_generator.anchor_generator.cell_anchors.{i}": cell_anchors(size)
        for i, size in enumerate(ANCHOR_SIZES)
    },
}


class _ModelZooUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, source: Path) -> None:
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise CheckpointError(
                f"{self.source}: refused the pickled global {module}.{name} (a model-zoo pickle "
                "holds only numpy arrays)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointError(f"{self.source}: refused a pickled persistent id {pid!r}")


def read_model_zoo_pickle(path: Path) -> dict[str, np.ndarray]:
    """The `model` dict of a detectron2 model-zoo pickle, through the restricted unpickler."""
    try:
        with open(path, "rb") as f:
            data = _ModelZooUnpickler(f, path).load()
    except CheckpointError:
        raise
    except Exception as exc:  # truncated, not a pickle, a refused opcode: name the file
        raise CheckpointError(f"{path}: cannot read the pickle: {exc}") from exc
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict):
        raise CheckpointError(f"{path}: not a detectron2 model-zoo pickle (no 'model' dict)")
    wrong = [
        str(k)
        for k, v in model.items()
        if not isinstance(k, str) or not isinstance(v, np.ndarray) or v.dtype != np.float32
    ]
    if wrong:
        raise CheckpointError(f"{path}: not float32 arrays: {_listing(wrong)}")
    return model


def convert_densepose_pickle(src: Path, dst: Path) -> None:
    """Checks a model-zoo pickle strictly and writes its tensors to `dst` (safetensors)."""
    arrays = read_model_zoo_pickle(src)
    state = {k: torch.from_numpy(np.array(v, copy=True)) for k, v in arrays.items()}
    checked, _ = checked_state(state, src)
    _save_atomic(checked, Path(dst))


def load_densepose_net(
    path: Path, cache_dir: Path, device: torch.device | str = "cpu"
) -> DensePoseNet:
    """The DensePose model from a model-zoo `.pkl` or a converted `.safetensors`.

    A `.pkl` is converted on first use into `cache_dir/densepose-<sha256[:16]>.safetensors`
    (atomically; the pickle's own folder is never written) and read from there afterwards.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: DensePose weights not found")
    if path.suffix == ".pkl":
        cached = Path(cache_dir) / f"densepose-{_sha256(path)[:16]}.safetensors"
        if not cached.is_file():
            convert_densepose_pickle(path, cached)
        path = cached
    elif path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: expected DensePose weights as .pkl or .safetensors")
    try:
        tensors = load_file(path)
    except Exception as exc:  # truncated or foreign file
        raise CheckpointError(f"{path}: cannot read weights: {exc}") from exc
    state, width_divisor = checked_state(tensors, path)
    with torch.device("meta"):
        net = DensePoseNet(width_divisor)
    net.load_state_dict(state, strict=True, assign=True)
    return net.requires_grad_(False).eval().to(device)


def checked_state(
    tensors: Mapping[str, torch.Tensor], source: Path
) -> tuple[dict[str, torch.Tensor], int]:
    """The model's own tensors of `tensors` and the width divisor they imply.

    Refuses (naming `source` and the keys) missing, unexpected and mis-shaped keys, and non-fp32
    values; old-checkpoint extras are dropped once their values are checked.
    """
    if STEM_KEY not in tensors:
        raise CheckpointError(f"{source}: missing key {STEM_KEY}")
    stem = tensors[STEM_KEY].shape[0]
    if stem < 1 or 64 % stem:
        raise CheckpointError(f"{source}: {STEM_KEY} has {stem} output channels (64 expected)")
    width_divisor = 64 // stem
    with torch.device("meta"):
        expected = DensePoseNet(width_divisor).state_dict()
    for key in sorted(set(tensors) & set(_OLD_EXTRAS)):
        want = _OLD_EXTRAS[key]
        got = tensors[key]
        if got.shape != want.shape or not torch.allclose(got.float(), want, atol=1e-3):
            raise CheckpointError(
                f"{source}: {key} is {got.flatten().tolist()}, the model assumes "
                f"{want.flatten().tolist()}"
            )
    given = set(tensors) - set(_OLD_EXTRAS)
    missing, unexpected = sorted(set(expected) - given), sorted(given - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{source}: {len(missing)} missing key(s) {_listing(missing)}, "
            f"{len(unexpected)} unexpected key(s) {_listing(unexpected)}"
        )
    wrong = [
        f"{k} {tuple(tensors[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if tensors[k].shape != v.shape
    ]
    wrong += [f"{k} is {tensors[k].dtype}" for k in expected if tensors[k].dtype != torch.float32]
    if wrong:
        raise CheckpointError(f"{source}: wrong tensors: {_listing(wrong)}")
    return {k: tensors[k] for k in expected}, width_divisor


def random_densepose_state(width_divisor: int, seed: int) -> dict[str, torch.Tensor]:
    """Random weights for `DensePoseNet(width_divisor)` (the tiny stand-in), drawn portably.

    Uniform draws with the spread of detectron2's initialisation (the reference recipe's rules),
    except that the box classifier favours "person" by a logit margin of about 4 and the box
    regression is near zero, so every photo yields confident detections near the RPN proposals.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in DensePoseNet(width_divisor).state_dict().items()}
    state = {}
    for key, shape in shapes.items():
        lo, hi = _init_range(key, shape)
        state[key] = lo + (hi - lo) * torch.rand(shape, generator=g)
    state["roi_heads.box_predictor.cls_score.bias"] = torch.tensor([4.0, 0.0])
    return state


def _init_range(key: str, shape: torch.Size) -> tuple[float, float]:
    """(lo, hi) of the uniform draw for one tensor: detectron2's init as a uniform spread."""
    if key.endswith("norm.weight"):  # FrozenBN; a small last scale keeps residuals tame
        return (0.1, 0.3) if ".conv3." in key else (0.5, 1.5)
    if key.endswith("norm.running_var"):
        return 0.5, 2.0
    fan_in = math.prod(shape[1:])
    if key.endswith(("norm.bias", "norm.running_mean")) or len(shape) == 1:
        std = 0.1 if "norm." in key else 0.02
    elif key.startswith("proposal_generator."):
        std = 0.004 if "anchor_deltas" in key else 0.01
    elif key.startswith("roi_heads.box_predictor."):
        std = 0.001
    elif key.startswith(("backbone.fpn_", "roi_heads.box_head.")):  # c2_xavier_fill
        std = fan_in**-0.5
    else:  # c2_msra_fill; a deconv weight (in, out, k, k) uses torch's fan_out, in * k * k
        std = (2.0 / (shape[0] * math.prod(shape[2:]))) ** 0.5
    return -std * 3**0.5, std * 3**0.5


def write_model_zoo_pickle(
    path: Path, state: Mapping[str, torch.Tensor], protocol: int = 2
) -> None:
    """Writes `state` in detectron2's model-zoo layout: {"model": {name: float32 ndarray}}."""
    model = {k: v.detach().cpu().float().numpy() for k, v in state.items()}
    with open(path, "wb") as f:
        pickle.dump({"model": model, "__author__": "vton"}, f, protocol=protocol)


def _save_atomic(state: dict[str, torch.Tensor], dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.contiguous() for k, v in state.items()}, tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _listing(keys: list[str], limit: int = 20) -> str:
    shown = ", ".join(keys[:limit])
    return f"[{shown}{', ...' if len(keys) > limit else ''}]"
