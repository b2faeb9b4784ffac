"""Session fixtures shared by every test package."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from vton.engine.devices import quiet_model_libraries

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = Path(os.environ.get("VTON_SHARED_DIR", REPO_ROOT.parent / "shared"))
REFERENCE_DIR = SHARED_DIR / "reference" / "idm-tiny"
PREPROCESS_REFERENCE_DIR = SHARED_DIR / "reference" / "preprocess"
DENSEPOSE_REFERENCE_DIR = SHARED_DIR / "reference" / "densepose"

quiet_model_libraries()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight checkpoint in the real layout with the person preprocessing
    stand-ins in its ckpt/ (as `vton make-tiny-model` writes it), once per test session."""
    from vton.engine.tiny import make_tiny_model
    from vton.preprocess.body.standins import write_standins

    model = make_tiny_model(tmp_path_factory.mktemp("tiny-model") / "model")
    write_standins(model / "ckpt")
    return model


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The original implementation's tiny checkpoint and reference values (../shared)."""
    if not (REFERENCE_DIR / "model").is_dir():
        pytest.skip(f"reference data not found at {REFERENCE_DIR} (set VTON_SHARED_DIR)")
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def preprocess_reference_dir() -> Path:
    """The original person preprocessing's reference cases (../shared/reference/preprocess)."""
    if not (PREPROCESS_REFERENCE_DIR / "SPEC.md").is_file():
        pytest.skip(f"reference data not found at {PREPROCESS_REFERENCE_DIR} (set VTON_SHARED_DIR)")
    return PREPROCESS_REFERENCE_DIR


@pytest.fixture(scope="session")
def densepose_reference_dir() -> Path:
    """detectron2 DensePose's reference case and weights recipe (../shared/reference/densepose)."""
    if not (DENSEPOSE_REFERENCE_DIR / "make_weights.py").is_file():
        pytest.skip(f"reference data not found at {DENSEPOSE_REFERENCE_DIR} (set VTON_SHARED_DIR)")
    return DENSEPOSE_REFERENCE_DIR


# --- artifact layer (issue 3): S3 test server and store fixtures, defined in s3_server.py ---
# The GPU machine's image has no moto: there `pytest -m gpu tests/gpu` runs without these
# fixtures (a test that needs one fails with "fixture not found", never silently).
if importlib.util.find_spec("moto") is not None:
    from tests.s3_server import artifact_store, s3_server, s3_store  # noqa: F401
