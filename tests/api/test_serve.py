"""`vton serve` as a process: dev mode prints a working token and the test page URL, the model
loads in the background, and SIGINT shuts it down cleanly."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.api.live import READY_TIMEOUT_S
from vton.cli import app as cli


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(model: Path, tmp_path: Path, port: int, log: Path) -> subprocess.Popen:
    """`vton serve` in a process on `port`, dev mode, logging to `log`."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VTON_")},
        "VTON_MODEL_PATH": str(model),
        "VTON_WIDTH": "96",
        "VTON_HEIGHT": "128",
        "VTON_PORT": str(port),
        "VTON_STORE": f"file://{tmp_path / 'store'}",
        "VTON_CACHE_DIR": str(tmp_path / "cache"),
    }
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "vton", "serve"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def test_dev_mode_prints_a_token_that_works(tiny_model_dir: Path, tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "serve.log"
    process = serve(tiny_model_dir, tmp_path, port, log)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        url = f"http://127.0.0.1:{port}"
        while True:
            try:
                if httpx.get(f"{url}/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        text = log.read_text()
        assert "DEV MODE" in text and f"test page: {url}/" in text
        token = re.search(r"DEV MODE token for user dev-user \(valid \d+ s\): (\S+)", text)
        assert token, text
        response = httpx.get(
            f"{url}/api/clothing", headers={"Authorization": f"Bearer {token.group(1)}"}
        )
        assert response.status_code == 200 and response.json() == {"items": []}
        assert re.search(r"engine device=cpu model=\S+ dtype=float32 .*optimisations_on=", text)
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0, log.read_text()
    assert "scheduler stopped" in log.read_text()


def test_a_model_that_cannot_load_stops_the_server(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    process = serve(tmp_path / "missing-model", tmp_path, free_port(), log)
    assert process.wait(READY_TIMEOUT_S) == 2, log.read_text()
    assert "error: the service failed to start: CheckpointError" in log.read_text()


def test_a_too_short_secret_stops_the_start_without_printing_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("VTON_JWT_SECRET", "short-but-secret-value")
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 2
    assert "jwt_secret" in result.output and "at least 32" in result.output
    assert "short-but-secret-value" not in result.output
