"""The tiny model's own working frame: `vton make-tiny-model` writes it into the checkpoint, the
settings take it when VTON_WIDTH / VTON_HEIGHT are unset, and the pipeline runs at it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from vton.config import TINY_MODEL_FRAME_FILE, Settings
from vton.engine.checkpoint import load_model
from vton.engine.optimize import EngineOptimizations
from vton.engine.pipeline import TryOnPipeline
from vton.engine.tiny import WORKING_FRAME
from vton.engine.types import DiffusionOptions, TryOnSample


def test_the_tiny_model_states_its_frame(tiny_model_dir: Path) -> None:
    frame = json.loads((tiny_model_dir / TINY_MODEL_FRAME_FILE).read_text())
    assert (frame["width"], frame["height"]) == WORKING_FRAME == (384, 512)
    assert "noise" in frame["about"]


def test_settings_take_the_tiny_frame_unless_a_size_is_set(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny = Settings(_env_file=None, model_path=tiny_model_dir)
    assert (tiny.width, tiny.height) == WORKING_FRAME
    real = Settings(_env_file=None, model_path=tmp_path)  # no frame file: a real checkpoint
    assert (real.width, real.height) == (768, 1024)
    given = Settings(_env_file=None, model_path=tiny_model_dir, width=192)
    assert (given.width, given.height) == (192, 1024)
    monkeypatch.setenv("VTON_HEIGHT", "256")
    from_env = Settings(_env_file=None, model_path=tiny_model_dir)
    assert (from_env.width, from_env.height) == (768, 256)


def test_the_tiny_model_runs_at_its_frame(tiny_model_dir: Path) -> None:
    width, height = WORKING_FRAME
    pipeline = TryOnPipeline(load_model(tiny_model_dir), EngineOptimizations(compile=False))
    gray, white = Image.new("RGB", (width, height), (128,) * 3), Image.new("L", (width, height))
    sample = TryOnSample(gray, white, gray, gray, description="a shirt", seed=1)
    (output,) = pipeline([sample], DiffusionOptions(steps=1, width=width, height=height))
    assert output.pil.size == WORKING_FRAME
