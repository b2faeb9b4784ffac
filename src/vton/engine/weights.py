"""Reading weight files from a component folder and loading them strictly into a module."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from vton.errors import CheckpointError

_WEIGHT_NAMES = (
    "diffusion_pytorch_model.safetensors",
    "model.safetensors",
    "diffusion_pytorch_model.bin",
    "pytorch_model.bin",
)


def find_weight_files(folder: Path) -> list[Path]:
    """The weight files of one component: a single file or the shards an index names."""
    for name in _WEIGHT_NAMES:
        index = folder / f"{name}.index.json"
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            return [folder / shard for shard in shards]
        if (folder / name).is_file():
            return [folder / name]
    raise CheckpointError(f"{folder}: no weights (looked for {', '.join(_WEIGHT_NAMES)})")


def read_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of a component folder; `.bin` is read with weights_only=True, never unpickled."""
    state: dict[str, torch.Tensor] = {}
    for path in find_weight_files(folder):
        try:
            if path.suffix == ".safetensors":
                state.update(load_file(path))
            else:
                state.update(torch.load(path, map_location="cpu", weights_only=True))
        except Exception as exc:  # a truncated or foreign file: name it
            raise CheckpointError(f"{path}: cannot read weights: {exc}") from exc
    return state


def load_strict(
    module: nn.Module, state: dict[str, torch.Tensor], what: str, key_prefix: str = ""
) -> None:
    """Loads `state` into `module`; every key must land and every parameter must be filled.

    `key_prefix` is prepended to the keys a failure lists (where the module sits in the file).

    Keys of non-persistent buffers (e.g. CLIP's position_ids, saved by older library versions)
    are accepted and dropped: they are derived, not learned.
    """
    expected = set(module.state_dict().keys())
    derived = {name for name, _ in module.named_buffers()} - expected
    given = set(state) - derived
    missing = sorted(key_prefix + k for k in expected - given)
    unexpected = sorted(key_prefix + k for k in given - expected)
    if missing or unexpected:
        raise CheckpointError(
            f"{what}: strict load failed: {len(missing)} missing key(s) {_listing(missing)}, "
            f"{len(unexpected)} unexpected key(s) {_listing(unexpected)}"
        )
    own = module.state_dict()
    wrong = [
        f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}"
        for k in sorted(expected)
        if tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if wrong:
        raise CheckpointError(f"{what}: shape mismatch: {_listing(wrong)}")
    module.load_state_dict({k: state[k] for k in expected}, strict=True)


def _listing(keys: list[str], limit: int = 20) -> str:
    shown = ", ".join(keys[:limit])
    more = f", ... ({len(keys) - limit} more)" if len(keys) > limit else ""
    return f"[{shown}{more}]"
