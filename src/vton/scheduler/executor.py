"""The execute step: one Batch through a device's pipelines, each item to an ItemOutcome.

- A call that fails on n > 1 samples (CUDA out of memory, or any error) is split in halves and each
  half is run again, recursively; an item fails only with the error it raises alone (OutOfMemory
  when that error is out of memory), so one bad item never fails its batch.
- After each denoising step the items' jobs get progress, and the call stops (between steps) once
  every item's job has finished (cancelled or past its deadline); those items get no outcome.
- An image that is non-finite or all black is retried once on the fallback pipeline (a safer
  precision), then fails with NonFiniteOutput.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch

from vton.engine.devices import free_device_memory
from vton.engine.types import DiffusionOptions, TryOnOutput
from vton.errors import VtonError
from vton.scheduler.errors import EngineFailed, NonFiniteOutput, OutOfMemory
from vton.scheduler.stages import Batch, DevicePipelines, ItemOutcome, Pipeline, WorkItem, by_job

logger = logging.getLogger(__name__)

BLACK = -1.0 + 2.0 / 255.0
"""An image whose every value is at most this (in [-1, 1]) is all black."""


class _Aborted(Exception):
    """Every item of the running call belongs to a finished job."""


def is_usable(output: TryOnOutput) -> bool:
    """False for an image with a NaN or an infinity, or all black."""
    image = output.image
    return bool(torch.isfinite(image).all()) and bool(image.max() > BLACK)


class BatchExecutor:
    def __init__(self, pipelines: DevicePipelines, on_split: Callable[[], None]) -> None:
        self._pipelines = pipelines
        self._on_split = on_split

    def run(self, batch: Batch) -> list[ItemOutcome]:
        """The outcomes of the batch's items whose jobs are still open when their call ends."""
        kept: list[ItemOutcome] = []
        unusable: list[WorkItem] = []
        for o in self._isolate(self._pipelines.main, batch.items, batch.options):
            if o.output is None or is_usable(o.output):
                kept.append(o)
            else:
                unusable.append(o.item)
        if not unusable:
            return kept
        return kept + self._retry_unusable(unusable, batch.options)

    def _retry_unusable(
        self, items: Sequence[WorkItem], options: DiffusionOptions
    ) -> list[ItemOutcome]:
        fallback = self._pipelines.fallback
        if fallback is None:
            error = "the image was non-finite or all black (no safer precision to retry in)"
            return [ItemOutcome(item, error=NonFiniteOutput(error)) for item in items]
        logger.warning("retrying %d non-finite or black image(s) in the fallback", len(items))
        error = "the image was non-finite or all black, also when retried in a safer precision"
        return [
            ItemOutcome(o.item, error=NonFiniteOutput(error))
            if o.output is not None and not is_usable(o.output)
            else o
            for o in self._isolate(fallback, items, options)
        ]

    def _isolate(
        self, pipeline: Pipeline, items: Sequence[WorkItem], options: DiffusionOptions
    ) -> list[ItemOutcome]:
        live = [item for item in items if not item.job.done]
        if not live:
            return []
        error: VtonError
        try:
            outputs = pipeline([item.sample for item in live], options, self._on_step(live))
        except _Aborted:
            return []
        except torch.cuda.OutOfMemoryError:
            error = OutOfMemory("out of device memory even in a batch of its own")
        except VtonError as exc:
            error = exc.with_traceback(None)
        except Exception as exc:
            logger.warning("pipeline failed on %d sample(s)", len(live), exc_info=len(live) == 1)
            error = EngineFailed(f"{type(exc).__name__}: {exc}")
        else:
            if len(outputs) == len(live):
                return [ItemOutcome(i, output=o) for i, o in zip(live, outputs, strict=True)]
            error = EngineFailed(f"pipeline gave {len(outputs)} outputs for {len(live)} samples")
        if len(live) == 1:
            return [ItemOutcome(live[0], error=error)]
        self._on_split()
        free_device_memory()
        half = len(live) // 2
        return self._isolate(pipeline, live[:half], options) + self._isolate(
            pipeline, live[half:], options
        )

    @staticmethod
    def _on_step(items: Sequence[WorkItem]) -> Callable[[int, int], None]:
        groups = by_job(items)

        def on_step(steps_done: int, _total: int) -> None:
            if all(job.done for job in groups):
                raise _Aborted
            for job, indices in groups.items():
                job.record_progress(indices, steps_done)

        return on_step
