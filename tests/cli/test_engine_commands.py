"""`vton make-tiny-model` and `vton tryon`, run as a user runs them (a real subprocess)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from tests.helpers import random_image

VTON = [sys.executable, "-m", "vton"]


def run_vton(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VTON, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    paths = {}
    for name, mode in (("person", "RGB"), ("mask", "L"), ("pose", "RGB"), ("garment", "RGB")):
        paths[name] = folder / f"{name}.png"
        random_image(len(paths), mode=mode).save(paths[name])
    return paths


def tryon_args(model: Path, inputs: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [
        "tryon", "--model", str(model),
        "--person", str(inputs["person"]), "--mask", str(inputs["mask"]),
        "--pose", str(inputs["pose"]), "--garment", str(inputs["garment"]),
        "--description", "a red t-shirt", "--steps", "2", "--height", "128", "--width", "96",
        "--out", str(out), *extra,
    ]  # fmt: skip


def test_make_tiny_model_then_tryon_writes_a_png_of_the_right_size(tmp_path, inputs):
    model = tmp_path / "tiny"
    made = run_vton("make-tiny-model", str(model))
    assert made.returncode == 0, made.stderr
    out, raw = tmp_path / "out.png", tmp_path / "raw.safetensors"
    done = run_vton(*tryon_args(model, inputs, out, "--out-raw", str(raw), "--scheduler", "ddim"))
    assert done.returncode == 0, done.stderr
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (96, 128) and image.mode == "RGB"
        pixels = torch.tensor(list(image.getdata()), dtype=torch.float32)
    tensor = load_file(raw)["image"]
    assert tensor.shape == (1, 3, 128, 96) and tensor.dtype == torch.float32
    assert tensor.min() >= -1 and tensor.max() <= 1
    # the PNG is the raw image converted to 8 bits
    expected = ((tensor[0] / 2 + 0.5).clamp(0, 1) * 255).round().permute(1, 2, 0).reshape(-1, 3)
    assert torch.equal(pixels, expected)


def test_latents_file_fixes_the_noise(tmp_path, tiny_model_dir, inputs):
    latents = tmp_path / "latents.safetensors"
    save_file({"latents": torch.randn(1, 4, 16, 12)}, latents)
    outs = []
    for seed in ("1", "2"):
        out = tmp_path / f"out{seed}.png"
        args = tryon_args(tiny_model_dir, inputs, out, "--latents", str(latents), "--seed", seed)
        done = run_vton(*args, "--scheduler", "ddim")
        assert done.returncode == 0, done.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"--person": "/nonexistent/person.png"}, "--person: file not found"),
        ({"--garment": "NOT_AN_IMAGE"}, "--garment: not a readable image"),
        ({"--scheduler": "heun"}, "unknown 'heun'"),
        ({"--latents": "BAD_SHAPE"}, "latents must be"),
        ({"--model": "MISSING_COMPONENT"}, "missing component(s): vae"),
        ({"--dtype": "float64"}, "unknown dtype"),
    ],
)
def test_bad_input_exits_non_zero_with_one_clear_line(
    tmp_path, tiny_model_dir, inputs, change, expected
):
    model = tiny_model_dir
    args = tryon_args(model, inputs, tmp_path / "out.png")
    for flag, value in change.items():
        if value == "NOT_AN_IMAGE":
            value = str(tmp_path / "garment.png")
            Path(value).write_text("this is not a png")
        elif value == "BAD_SHAPE":
            value = str(tmp_path / "latents.safetensors")
            save_file({"latents": torch.zeros(1, 4, 8, 8)}, value)
        elif value == "MISSING_COMPONENT":
            value = str(tmp_path / "broken-model")
            Path(value).mkdir()
            for child in Path(model).iterdir():
                if child.name != "vae":
                    (Path(value) / child.name).symlink_to(child)
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    done = run_vton(*args)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert expected in lines[0]
    assert not (tmp_path / "out.png").exists()
