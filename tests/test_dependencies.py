"""The runtime needs neither the test packages nor boto3: the service, its CLI and the default
local folder store import and open without them; an s3:// store without boto3 says which extra
to install."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

WITHOUT_BOTO3 = textwrap.dedent(
    """
    import sys
    for name in ("boto3", "botocore"):
        sys.modules[name] = None  # `import boto3` now fails as if it were not installed

    from vton.api import create_app
    from vton.cli import main
    from vton.config import Settings
    from vton.errors import InvalidInput
    from vton.store import open_store

    create_app(Settings(_env_file=None, store="file://{tmp}/store"))
    open_store(Settings(_env_file=None, store="file://{tmp}/store")).put("a/b", b"x")
    try:
        open_store(Settings(_env_file=None, store="s3://bucket/prefix"))
    except InvalidInput as e:
        print("s3:", e)
    test_only = [m for m in ("pytest", "moto", "playwright") if m in sys.modules]
    print("test packages imported:", test_only)
    """
)


def test_the_service_runs_without_boto3_and_test_packages(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_BOTO3.format(tmp=tmp_path)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "s3: VTON_STORE: an s3:// store needs boto3: pip install 'vton[s3]'" in lines
    assert "test packages imported: []" in lines
    assert (tmp_path / "store" / "a" / "b").read_bytes() == b"x"
