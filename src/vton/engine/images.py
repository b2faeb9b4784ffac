"""Image <-> tensor conversions, following the reference implementation's preprocessing."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from vton.errors import InvalidInput

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def fit_to(image: Image.Image, width: int, height: int) -> Image.Image:
    """Resizes to the working size (Pillow's default bicubic, as the reference app does)."""
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BICUBIC)
    return image


def to_signed_tensor(image: Image.Image, width: int, height: int) -> torch.Tensor:
    """RGB image -> (3, H, W) float32 in [-1, 1]."""
    array = np.asarray(fit_to(image.convert("RGB"), width, height), dtype=np.float32) / 255.0
    return torch.from_numpy(2.0 * array - 1.0).permute(2, 0, 1).contiguous()


def to_binary_mask(mask: Image.Image, width: int, height: int) -> torch.Tensor:
    """Grayscale mask -> (1, H, W) float32 of {0, 1}; >= 0.5 is 1 (the area to repaint)."""
    array = np.asarray(fit_to(mask.convert("L"), width, height), dtype=np.float32) / 255.0
    return torch.from_numpy((array >= 0.5).astype(np.float32))[None]


def clip_pixels(image: Image.Image, size: int) -> torch.Tensor:
    """CLIPImageProcessor's defaults, in Pillow: shortest edge to `size` (bicubic), centre crop,
    rescale 1/255, CLIP mean/std. Returns (3, size, size) float32."""
    image = image.convert("RGB")
    width, height = image.size
    if width <= height:
        new_width, new_height = size, int(size * height / width)
    else:
        new_width, new_height = int(size * width / height), size
    image = image.resize((new_width, new_height), Image.Resampling.BICUBIC)
    top, left = (new_height - size) // 2, (new_width - size) // 2
    image = image.crop((left, top, left + size, top + size))
    array = (np.asarray(image).astype(np.float64) * (1 / 255)).astype(np.float32)
    mean = np.array(CLIP_MEAN, dtype=np.float32)
    std = np.array(CLIP_STD, dtype=np.float32)
    return torch.from_numpy((array - mean) / std).permute(2, 0, 1).contiguous()


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) in [-1, 1] -> (..., H, W, 3) uint8, rounding as diffusers' postprocess
    does; runs where the tensor is (on the GPU, it leaves the host a quarter of the bytes)."""
    scaled = ((images.float() / 2 + 0.5).clamp(0, 1) * 255).round()
    return scaled.to(torch.uint8).movedim(-3, -1)


def to_pil(image: torch.Tensor) -> Image.Image:
    """(3, H, W) in [-1, 1], or (H, W, 3) uint8 from `to_uint8`, -> 8-bit RGB image."""
    if image.dtype != torch.uint8:
        image = to_uint8(image)
    return Image.fromarray(image.cpu().numpy())


def open_image(path: str, what: str) -> Image.Image:
    """Opens and fully decodes an image file; InvalidInput names the argument on failure."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except FileNotFoundError as exc:
        raise InvalidInput(f"{what}: file not found: {path}") from exc
    except Exception as exc:
        raise InvalidInput(f"{what}: not a readable image: {path} ({exc})") from exc
