"""A real uvicorn server on 127.0.0.1 with the tiny model, and what tests send it.

LiveServer runs create_app(settings) in a thread on a free port; FaultyPipeline wraps the real
engine to hold the worker or inject CUDA out-of-memory; the image helpers make small inputs.
"""

from __future__ import annotations

import base64
import io
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
import uvicorn
from PIL import Image, ImageDraw

from vton.api import create_app
from vton.api.runtime import Runtime
from vton.api.tokens import TokenCodec
from vton.config import Settings
from vton.engine.types import DiffusionOptions, TryOnOutput, TryOnSample
from vton.scheduler import DevicePipelines
from vton.service.engine import DeviceEngine, load_engine

SECRET = "test-secret-" + "x" * 40
STEPS = 2
READY_TIMEOUT_S = 120.0
WAIT_S = 60.0
"""How long a test waits for something the server should do soon."""


class LiveServer:
    """uvicorn serving an app on a free port of 127.0.0.1, in a thread."""

    def __init__(self, settings: Settings, **app_options: Any) -> None:
        self.settings = settings
        self.app = create_app(settings, **app_options)
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=0, log_config=None, access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self.tokens = TokenCodec(SECRET)

    @property
    def runtime(self) -> Runtime:
        return self.app.state.runtime

    def start(self, ready: bool = True) -> LiveServer:
        """Serves; with `ready`, returns once /ready answers 200."""
        self._thread.start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self._server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        while ready and httpx.get(f"{self.url}/ready").status_code != 200:
            assert time.monotonic() < deadline, httpx.get(f"{self.url}/ready").text
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(60)

    def token(self, user_id: str, ttl_s: int = 3600) -> str:
        return self.tokens.mint(user_id, ttl_s)

    def client(self, user_id: str | None = None, timeout: float = WAIT_S) -> httpx.Client:
        """A client of the server, with `user_id`'s token (none: no Authorization header)."""
        headers = {"Authorization": f"Bearer {self.token(user_id)}"} if user_id else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def metric(self, name: str, missing_ok: bool = False) -> float:
        """The sum of a metric's samples (a name, or a name with its labels) from /metrics;
        a metric not there yet is 0 with missing_ok, else an assertion error."""
        lines = httpx.get(f"{self.url}/metrics").text.splitlines()
        values = [
            float(line.rsplit(" ", 1)[1])
            for line in lines
            if line.startswith((name + "{", name + " "))
        ]
        assert values or missing_ok, f"no metric {name} in /metrics"
        return sum(values)


def make_settings(model: Path, tmp: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "model_path": model,
        "width": 96,
        "height": 128,
        "store": f"file://{tmp / 'store'}",
        "cache_dir": tmp / "cache",
        "jwt_secret": SECRET,
        "l2_cache_bytes": 64 * 2**20,
        "max_upload_bytes": 4 * 2**20,
        "batch_window_ms": 50,
        "max_batch": 8,
        "request_timeout_s": 60,
        **overrides,
    }
    return Settings(_env_file=None, **values)


def wait_for_line(caplog: pytest.LogCaptureFixture, fragment: str) -> str:
    """The one log line holding `fragment`; the server logs it just after the response ends."""
    deadline = time.monotonic() + WAIT_S
    while not (lines := [r.getMessage() for r in caplog.records if fragment in r.getMessage()]):
        assert time.monotonic() < deadline, f"no log line with {fragment}"
        time.sleep(0.01)
    (line,) = lines
    return line


# -- fault injection ---------------------------------------------------------------------------


class FaultyPipeline:
    """The real pipeline, behind a gate (clear it to hold the worker: `blocked` is set while a
    call waits), with an injected CUDA out-of-memory for calls of more than `oom_above` samples
    and, with `nan`, images that are all NaN."""

    def __init__(self, inner: Callable[..., list[TryOnOutput]]) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.gate.set()
        self.blocked = threading.Event()
        self.oom_above: int | None = None
        self.nan = False
        self.batch_sizes: list[int] = []

    def reset(self) -> None:
        self.gate.set()
        self.oom_above = None
        self.nan = False
        self.batch_sizes.clear()

    def __call__(
        self,
        samples: list[TryOnSample],
        options: DiffusionOptions,
        on_step: Callable[[int, int], None] | None = None,
    ) -> list[TryOnOutput]:
        self.batch_sizes.append(len(samples))
        if self.oom_above is not None and len(samples) > self.oom_above:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected by the test)")
        if not self.gate.is_set():
            self.blocked.set()
            assert self.gate.wait(WAIT_S), "the test never opened the gate"
            self.blocked.clear()
        outputs = self.inner(samples, options, on_step)
        if self.nan:
            outputs = [replace(o, image=torch.full_like(o.image, float("nan"))) for o in outputs]
        return outputs


@dataclass
class FaultyServer:
    """A LiveServer whose engine and fallback engine are FaultyPipelines."""

    server: LiveServer
    main: FaultyPipeline
    fallback: FaultyPipeline


def start_faulty_server(settings: Settings) -> FaultyServer:
    """A server on `settings` (give it a fallback_dtype) with both pipelines wrapped."""
    wrapped: list[FaultyPipeline] = []

    def load(settings: Settings, device: str) -> DeviceEngine:
        engine = load_engine(settings, device)
        assert engine.pipelines.fallback is not None, "set fallback_dtype"
        wrapped.extend(
            [FaultyPipeline(engine.pipelines.main), FaultyPipeline(engine.pipelines.fallback)]
        )
        pipelines = DevicePipelines(wrapped[0], wrapped[1])
        return replace(engine, pipelines=pipelines)

    server = LiveServer(settings, load=load).start()
    return FaultyServer(server, *wrapped)


# -- images and registration -------------------------------------------------------------------


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def b64_png(image: Image.Image) -> str:
    return base64.b64encode(png_bytes(image)).decode()


def person_images(size: tuple[int, int] = (96, 128)) -> dict[str, Image.Image]:
    """A person photo on a flat background, a mask of the torso, and a DensePose stand-in."""
    w, h = size
    torso = (w // 4, h // 4, 3 * w // 4, 3 * h // 4)
    person = Image.new("RGB", size, (30, 160, 90))
    ImageDraw.Draw(person).rectangle(torso, fill=(40, 60, 160))
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle(torso, fill=255)
    pose = Image.new("RGB", size, (0, 0, 0))
    ImageDraw.Draw(pose).rectangle(torso, fill=(90, 160, 200))
    return {"person": person, "mask": mask, "pose": pose}


def garment_image(color: tuple[int, int, int] = (200, 30, 40)) -> Image.Image:
    image = Image.new("RGB", (96, 128), (255, 255, 255))
    ImageDraw.Draw(image).rectangle((20, 20, 76, 108), fill=color)
    return image


def register_person(client: httpx.Client, size: tuple[int, int] = (96, 128)) -> dict:
    images = person_images(size)
    body = {
        "image": b64_png(images["person"]),
        "masks": {"upper_body": b64_png(images["mask"])},
        "pose": b64_png(images["pose"]),
    }
    response = client.put("/api/person", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def register_garment(client: httpx.Client, clothing_id: str, **fields: Any) -> dict:
    body = {
        "clothingId": clothing_id,
        "image": b64_png(garment_image()),
        "description": "a red t-shirt",
        "category": "upper_body",
        **fields,
    }
    response = client.post("/api/clothing", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def new_user() -> str:
    return f"user-{uuid.uuid4().hex[:10]}"


def wait_job(client: httpx.Client, job_id: str, timeout_s: float = WAIT_S) -> dict:
    """The job's status once it has ended (polled)."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = client.get(f"/api/jobs/{job_id}").json()
        if status["state"] in ("succeeded", "failed", "cancelled"):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
