"""Headless Debian Chromium on the real server: a gated server (a test can hold its worker), a
browser per module, a page per test, and screenshots kept for people to look at."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.api.live import FaultyPipeline, LiveServer, make_settings
from vton.config import Settings
from vton.scheduler import DevicePipelines
from vton.service.engine import DeviceEngine, load_engine

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]
TIMEOUT_MS = 60_000
SHOTS = Path("/tmp/vton-page-shots")
"""Where every screenshot is copied too, outside pytest's temporary folders."""


class GatedServer:
    """A LiveServer whose pipeline waits while `pipeline.gate` is clear."""

    def __init__(self, settings: Settings) -> None:
        self.pipelines: list[FaultyPipeline] = []
        self.live = LiveServer(settings, load=self._load).start()
        (self.pipeline,) = self.pipelines

    def _load(self, settings: Settings, device: str) -> DeviceEngine:
        engine = load_engine(settings, device)
        self.pipelines.append(FaultyPipeline(engine.pipelines.main))
        return replace(engine, pipelines=DevicePipelines(self.pipelines[-1], None))


@pytest.fixture(scope="module")
def gated_server(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatedServer]:
    server = GatedServer(make_settings(tiny_model_dir, tmp_path_factory.mktemp("e2e")))
    yield server
    server.pipeline.reset()
    server.live.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (scripts/setup.sh installs chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Any]:
    """Opens a page at a viewport size (a fresh context each: no shared storage)."""
    contexts = []

    def open_page(width: int = 1280, height: int = 900) -> Any:
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        return page

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def screenshot(tmp_path: Path) -> Any:
    """Saves a full-page screenshot in tmp_path and in /tmp/vton-page-shots; prints where."""

    def save(page: Any, name: str) -> Path:
        path = tmp_path / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, SHOTS / path.name)
        print(f"screenshot: {path} (copied to {SHOTS / path.name})")
        return path

    return save
