"""Fitting photos into 768 x 1024 with white padding, and back."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from tests.helpers import random_image
from vton.preprocess.fit import HEIGHT, WIDTH, compute_fit, fit_photo, undo_fit


@given(w=st.integers(1, 5000), h=st.integers(1, 5000))
def test_fit_keeps_the_aspect_ratio_inside_the_frame(w: int, h: int) -> None:
    fit = compute_fit((w, h))
    left, top, right, bottom = fit.box
    assert min(left, top) >= 0 and right <= WIDTH and bottom <= HEIGHT
    assert fit.fitted_width == WIDTH or fit.fitted_height == HEIGHT
    assert (
        abs(fit.fitted_width - w * fit.scale) <= 1 and abs(fit.fitted_height - h * fit.scale) <= 1
    )
    assert abs(left - (WIDTH - right)) <= 1 and abs(top - (HEIGHT - bottom)) <= 1  # centred


def test_a_wide_photo_is_padded_white_above_and_below() -> None:
    photo = random_image(0, 400, 200)
    fitted, fit = fit_photo(photo)
    assert fitted.size == (WIDTH, HEIGHT) and fitted.mode == "RGB"
    assert (fit.fitted_width, fit.fitted_height, fit.offset_y) == (768, 384, 320)
    pixels = np.asarray(fitted)
    assert (pixels[:320] == 255).all() and (pixels[704:] == 255).all()
    assert not (pixels[320:704] == 255).all()


def test_a_photo_of_the_working_size_is_unchanged() -> None:
    photo = random_image(1, WIDTH, HEIGHT)
    fitted, fit = fit_photo(photo)
    assert fit.scale == 1.0 and fit.box == (0, 0, WIDTH, HEIGHT)
    assert fitted.tobytes() == photo.tobytes()


def test_transparency_becomes_white() -> None:
    fitted, _ = fit_photo(Image.new("RGBA", (WIDTH, HEIGHT), (10, 20, 30, 0)))
    assert fitted.getpixel((5, 5)) == (255, 255, 255)


def test_undo_fit_returns_the_original_framing() -> None:
    gradient = np.tile(np.linspace(0, 255, 300, dtype=np.uint8), (500, 1))
    photo = Image.fromarray(np.stack([gradient] * 3, axis=-1))
    fitted, fit = fit_photo(photo)
    back = undo_fit(fitted, fit)
    assert back.size == photo.size
    assert np.abs(np.asarray(back, float) - np.asarray(photo, float)).mean() < 2.0
