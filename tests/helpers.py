"""Small helpers for tests (fixtures live in conftest.py, fakes in fakes.py)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def random_image(seed: int, width: int = 96, height: int = 128, mode: str = "RGB") -> Image.Image:
    """A noise image: never test on flat images, they hide indexing mistakes."""
    rng = np.random.default_rng(seed)
    shape = (height, width, 3) if mode == "RGB" else (height, width)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode)
