"""Framing photos into 768 x 1024 (letterbox or the demo's 3:4 crop), and back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import PIL
import pytest
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


# --- the original framings (shared/reference/preprocess/framing) --------------------------------

FRAMING_FILES = {
    "closzit_fit_768x1024.png": "letterbox",
    "demo_autocrop_768x1024.png": "crop",
}


def expected_framing(case: Path, name: str) -> np.ndarray:
    """The case's file, or its Pillow 13 variant where Pillow 13+ computes it differently."""
    variant = case / "variants" / "pillow-13" / name
    pillow_major = int(PIL.__version__.split(".")[0])
    path = variant if pillow_major >= 13 and variant.is_file() else case / name
    return np.asarray(Image.open(path).convert("RGB"))


def framing_cases(reference: Path) -> list[Path]:
    cases = sorted(p for p in (reference / "framing").iterdir() if (p / "input.png").is_file())
    assert cases, "no framing cases found"
    return cases


def test_every_framing_matches_the_original(preprocess_reference_dir: Path) -> None:
    standin = Image.open(preprocess_reference_dir / "framing/standin_tryon_result_768x1024.png")
    for case in framing_cases(preprocess_reference_dir):
        photo = Image.open(case / "input.png")
        for name, framing in FRAMING_FILES.items():
            fitted = fit_photo(photo, framing)[0]
            assert np.array_equal(np.asarray(fitted), expected_framing(case, name)), (case, name)
        crop_fit = fit_photo(photo, "crop")[1]
        recorded = json.loads((case / "case.json").read_text())
        assert list(crop_fit.crop_box) == [
            recorded["demo_autocrop"][k] for k in ("left", "top", "right", "bottom")
        ]
        back = undo_fit(standin, crop_fit, photo)
        assert np.array_equal(np.asarray(back), expected_framing(case, "demo_pasteback.png")), case


def test_the_crop_rounds_half_to_even_and_pastes_at_the_truncated_corner() -> None:
    """1600 x 900: the box is 462.5..1137.5, cropped as 462..1138 (676 wide), pasted at x=462."""
    fit = compute_fit((1600, 900), "crop")
    assert fit.crop_box == (462.5, 0.0, 1137.5, 900.0)
    assert fit.crop_pixels == (462, 0, 1138, 900)
    photo = Image.new("RGB", (1600, 900), (0, 0, 255))
    back = undo_fit(Image.new("RGB", (WIDTH, HEIGHT), (255, 0, 0)), fit, photo)
    row = np.asarray(back)[450]
    assert (row[462:1138] == (255, 0, 0)).all()
    assert (row[:462] == (0, 0, 255)).all() and (row[1138:] == (0, 0, 255)).all()


def test_the_crop_framing_needs_the_photo_to_go_back() -> None:
    photo = random_image(3, 300, 500)
    fitted, fit = fit_photo(photo, "crop")
    assert fit.mode == "crop" and fitted.size == (WIDTH, HEIGHT)
    with pytest.raises(ValueError, match="original photo"):
        undo_fit(fitted, fit)
