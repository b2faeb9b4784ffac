"""A scheduler factory over fake pipelines; every scheduler is shut down after its test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.fakes import FakePipeline
from vton.engine.types import DiffusionOptions
from vton.scheduler import DevicePipelines, PostProcess, Scheduler, SchedulerConfig
from vton.scheduler.stages import keep_output

OPTIONS = DiffusionOptions(steps=4, height=16, width=12)
WAIT_S = 10.0
"""How long a test waits for something that should happen at once; never a sleep."""

StartScheduler = Callable[..., Scheduler]


@pytest.fixture
def start() -> Iterator[StartScheduler]:
    """start(fake, fallback=None, post_process=keep_output, devices=None, **config) -> a running
    Scheduler.

    devices maps device names to fakes for several workers; config overrides SchedulerConfig
    (batch_window_ms defaults to 0 here: tests hold the worker when they want batches).
    """
    started: list[tuple[Scheduler, list[FakePipeline]]] = []

    def _start(
        fake: FakePipeline | None = None,
        *,
        fallback: FakePipeline | None = None,
        post_process: PostProcess = keep_output,
        devices: dict[str, FakePipeline] | None = None,
        **config: object,
    ) -> Scheduler:
        fakes = devices if devices is not None else {"cpu": fake or FakePipeline()}
        settings = SchedulerConfig(devices=tuple(fakes), **{"batch_window_ms": 0, **config})
        pipelines = {d: DevicePipelines(f, fallback) for d, f in fakes.items()}
        scheduler = Scheduler(settings, pipelines, post_process)
        scheduler.start()
        started.append((scheduler, [*fakes.values(), *([fallback] if fallback else [])]))
        return scheduler

    yield _start
    for scheduler, fakes in started:
        for fake in fakes:
            fake.gate.set()
        scheduler.shutdown()
