"""A real redis-server per test session (free port, temp dir, no persistence), stopped by PID,
and queue settings with short locks so crash tests run in seconds."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # bullmq may be missing: the test modules skip then
    from vton.cluster.queue import QueueSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = Path(__file__).with_name("node")
"""The Node bullmq producer (what a NestJS service runs) and its npm packages."""


@dataclass
class RedisServer:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        """SIGTERM by PID, SIGKILL if it does not exit in 5 s."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pings(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(directory: Path, port: int | None = None) -> RedisServer:
    """Starts redis-server on `port` (a free one by default) and waits for PING."""
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("redis-server is not installed (scripts/setup.sh installs the Debian package)")
    port = port or _free_port()
    process = subprocess.Popen(
        [
            executable,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(directory),
            "--save",
            "",
            "--appendonly",
            "no",
            "--loglevel",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
    )
    server = RedisServer(process, port)
    deadline = time.monotonic() + 10
    while not _pings(port):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"redis-server on port {port} did not answer PING")
        time.sleep(0.02)
    return server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


def fast_settings(url: str, **overrides: object) -> QueueSettings:
    """A fresh queue (unique name) with locks short enough for crash tests."""
    from vton.cluster.queue import QueueSettings

    values: dict[str, object] = {
        "url": url,
        "name": f"test-{uuid.uuid4().hex[:8]}",
        "lock_duration_ms": 1000,
        "stalled_interval_ms": 500,
        "cancel_poll_s": 0.05,
        "call_timeout_s": 2.0,
    }
    values.update(overrides)
    return QueueSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(redis_server: RedisServer) -> QueueSettings:
    return fast_settings(redis_server.url)


@pytest.fixture
def node() -> str:
    """The node executable, with Node bullmq installed in NODE_DIR (else the test skips)."""
    executable = shutil.which("node")
    if executable is None:
        pytest.skip("node is not installed")
    if not (NODE_DIR / "node_modules" / "bullmq").is_dir():
        pytest.skip(f"Node bullmq is not installed in {NODE_DIR} (scripts/setup.sh installs it)")
    return executable
