"""`vton serve` and `vton worker` processes on one Redis and one store folder, for the cluster
mode's end-to-end tests (the tiny model on the CPU). Each process logs to its own file; stopped
by PID (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]

START_TIMEOUT_S = 180.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class VtonProcess:
    process: subprocess.Popen[bytes]
    log: Path
    url: str | None = None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, fragment: str, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while fragment not in self.log_text():
            assert self.process.poll() is None, f"exited: {self.log_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no {fragment!r}: {self.log_text()[-3000:]}"
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL, as a crashed host."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout_s: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


@dataclass
class Fleet:
    """The environment every process of one deployment shares."""

    tmp: Path
    env: dict[str, str]
    processes: list[VtonProcess] = field(default_factory=list)

    def _spawn(self, name: str, args: list[str], **env: str) -> VtonProcess:
        log = self.tmp / f"{name}-{len(self.processes)}.log"
        cache = self.tmp / f"cache-{len(self.processes)}"
        full_env = {**os.environ, **self.env, "VTON_CACHE_DIR": str(cache), **env}
        full_env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT / "src"), str(REPO_ROOT)])
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "vton", *args],
                env=full_env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.tmp,
            )
        started = VtonProcess(process, log)
        self.processes.append(started)
        return started

    def api(self, **env: str) -> VtonProcess:
        """`vton serve`, returned once /ready answers 200."""
        port = free_port()
        api = self._spawn("api", ["serve", "--port", str(port)], **env)
        api.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert api.process.poll() is None, api.log_text()[-3000:]
            assert time.monotonic() < deadline, api.log_text()[-3000:]
            try:
                if httpx.get(f"{api.url}/ready", timeout=2).status_code == 200:
                    return api
            except httpx.HTTPError:
                pass
            time.sleep(0.2)

    def worker(self, **env: str) -> VtonProcess:
        """`vton worker`, returned once it consumes (after its warm-up)."""
        worker = self._spawn("worker", ["worker"], **env)
        worker.wait_for("consuming queue=")
        return worker

    def stop_all(self) -> None:
        for process in self.processes:
            process.stop()
