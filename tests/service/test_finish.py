"""Paste-back with a feathered mask, and returning the original photo's framing."""

from __future__ import annotations

import numpy as np
from PIL import Image

from tests.helpers import random_image
from vton.preprocess.fit import compute_fit
from vton.service.finish import Finish, paste_back


def box_mask(size: tuple[int, int], box: tuple[int, int, int, int]) -> Image.Image:
    mask = Image.new("L", size, 0)
    mask.paste(255, box)
    return mask


def test_paste_back_keeps_the_person_outside_and_feathers_the_edge() -> None:
    person, result = random_image(1, 96, 128), random_image(2, 96, 128)
    out = np.asarray(paste_back(result, person, box_mask((96, 128), (24, 32, 72, 96)))).astype(int)
    person_px, result_px = np.asarray(person).astype(int), np.asarray(result).astype(int)
    assert (out[:20] == person_px[:20]).all()  # far outside: the photo, exactly
    assert (out[50:80, 40:56] == result_px[50:80, 40:56]).all()  # deep inside: the result
    edge = out[64, 22:26]  # across the left edge: a blend of both
    assert (edge != person_px[64, 22:26]).any() and (edge != result_px[64, 22:26]).any()


def test_nothing_to_do_returns_the_same_image() -> None:
    image = random_image(3, 96, 128)
    finish = Finish(
        random_image(4, 96, 128), box_mask((96, 128), (0, 0, 1, 1)), None, False, "768x1024"
    )
    assert finish.apply(image) is image
    migrated = Finish(
        random_image(4, 96, 128), box_mask((96, 128), (0, 0, 1, 1)), None, False, "original"
    )
    assert migrated.apply(image) is image  # no recorded fit: the working frame


def test_original_framing_undoes_the_fit() -> None:
    fit = compute_fit((400, 300))  # landscape, padded into 768x1024
    result = random_image(5, 96, 128)  # the engine's working size
    finish = Finish(
        random_image(6, 768, 1024), box_mask((768, 1024), (0, 0, 1, 1)), fit, False, "original"
    )
    assert finish.apply(result).size == (400, 300)


def test_paste_back_applies_to_the_image() -> None:
    person, result = random_image(7, 96, 128), random_image(8, 96, 128)
    mask = box_mask((96, 128), (24, 32, 72, 96))
    finished = Finish(person, mask, None, True, "768x1024").apply(result)
    assert finished.tobytes() == paste_back(result, person, mask).tobytes()


def test_the_key_describes_the_options() -> None:
    person, mask = random_image(9, 96, 128), box_mask((96, 128), (0, 0, 1, 1))
    keys = {
        Finish(person, mask, None, paste, framing).key
        for paste in (True, False)
        for framing in ("768x1024", "original")
    }
    assert Finish(person, mask, None, True, "768x1024").key == "paste_back=1;framing=768x1024"
    assert len(keys) == 4
