"""Session fixtures shared by every test package."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vton.engine.runtime import quiet_model_libraries

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = Path(os.environ.get("VTON_SHARED_DIR", REPO_ROOT.parent / "shared"))
REFERENCE_DIR = SHARED_DIR / "reference" / "idm-tiny"

quiet_model_libraries()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight checkpoint in the real layout, written once per test session."""
    from vton.engine.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-model") / "model")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The original implementation's tiny checkpoint and reference values (../shared)."""
    if not (REFERENCE_DIR / "model").is_dir():
        pytest.skip(f"reference data not found at {REFERENCE_DIR} (set VTON_SHARED_DIR)")
    return REFERENCE_DIR


# --- artifact layer (issue 3): S3 test server and store fixtures, defined in s3_server.py ---
from tests.s3_server import artifact_store, s3_server, s3_store  # noqa: E402, F401
