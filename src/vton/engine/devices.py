"""Choosing dtype and device from user-facing names, quieting the model libraries' logs, and
handing cached device memory back after running out of it."""

from __future__ import annotations

import torch

from vton.errors import InvalidInput

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def parse_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise InvalidInput(f"unknown dtype {name!r}; choose one of {', '.join(DTYPES)}")
    return DTYPES[name]


def parse_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise InvalidInput(f"unknown device {name!r}; use cpu or cuda[:N]") from exc
    if device.type not in ("cpu", "cuda"):
        raise InvalidInput(f"unsupported device {name!r}; use cpu or cuda[:N]")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInput(f"device {name!r} requested but CUDA is not available")
    return device


def quiet_model_libraries() -> None:
    """transformers and diffusers log warnings meant for model authors; keep errors only."""
    import diffusers
    import transformers

    transformers.logging.set_verbosity_error()
    diffusers.utils.logging.set_verbosity_error()


def free_device_memory() -> None:
    """Returns the caching allocator's unused blocks to the device (after an out-of-memory)."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
