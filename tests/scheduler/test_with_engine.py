"""The real pipeline (tiny random model) behind the scheduler: same images as called directly."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import random_image
from tests.scheduler.conftest import WAIT_S
from vton.engine.checkpoint import load_model
from vton.engine.pipeline import TryOnPipeline
from vton.engine.types import DiffusionOptions, TryOnOutput, TryOnSample
from vton.scheduler import DevicePipelines, JobState, Scheduler, SchedulerConfig

pytestmark = pytest.mark.timeout(120)

OPTIONS = DiffusionOptions(steps=3, height=128, width=96)


def _sample(k: int) -> TryOnSample:
    return TryOnSample(
        person=random_image(100 + k),
        mask=random_image(200 + k, mode="L"),
        pose=random_image(300 + k),
        garment=random_image(400 + k),
        description=f"garment number {k}",
        seed=k,
    )


def test_batched_jobs_get_the_images_of_direct_calls(tiny_model_dir) -> None:
    pipeline = TryOnPipeline(load_model(tiny_model_dir))
    expected = [pipeline([_sample(k)], OPTIONS)[0].pil for k in range(3)]
    config = SchedulerConfig(max_batch=3, batch_window_ms=60_000)
    with Scheduler(config, {"cpu": DevicePipelines(pipeline)}) as scheduler:
        jobs = [scheduler.submit(f"user-{k}", [_sample(k)], OPTIONS) for k in range(3)]
        assert all(job.wait(WAIT_S * 6) for job in jobs)
    for job, image in zip(jobs, expected, strict=True):
        snapshot = job.snapshot()
        assert snapshot.state is JobState.SUCCEEDED
        assert (snapshot.step, snapshot.total_steps) == (3, 3)
        result = snapshot.items[0].result
        assert result is not None and result.batch_size == 3
        assert isinstance(result.value, TryOnOutput)  # the default post-process keeps it
        got = np.asarray(result.value.pil.convert("RGB"), dtype=np.int16)
        assert np.abs(got - np.asarray(image, dtype=np.int16)).max() <= 1
