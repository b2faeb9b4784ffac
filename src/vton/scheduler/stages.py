"""What a worker is given (Pipeline, DevicePipelines, PostProcess) and the records that pass
between its stages, each holding a live job:

    submit -> WorkItem (queued) -> Batch (schedule) -> ItemOutcome (execute) -> ItemResult (update)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from vton.engine.types import DiffusionOptions, TryOnOutput, TryOnSample
from vton.errors import VtonError
from vton.scheduler.job import Job


class Pipeline(Protocol):
    """What a worker calls: `vton.engine.pipeline.TryOnPipeline`, or a fake with its signature.

    on_step(steps_done, total_steps) is called after each denoising step; raising from it stops
    the call.
    """

    def __call__(
        self,
        samples: list[TryOnSample],
        options: DiffusionOptions,
        on_step: Callable[[int, int], None] | None = None,
    ) -> list[TryOnOutput]: ...


@dataclass(frozen=True)
class DevicePipelines:
    """What one worker drives: the pipeline on its device and, optionally, a fallback.

    The fallback is the same model in a safer precision (e.g. float32 VAE); an item whose image is
    non-finite or all black is retried once on it. Without one such an item fails at once.
    """

    main: Pipeline
    fallback: Pipeline | None = None


@dataclass(frozen=True, eq=False)
class WorkItem:
    """One sample waiting for or in a batch: one garment on one person, with the job's options."""

    job: Job
    index: int
    """The item's position in its job (the request's order of garments)."""
    sample: TryOnSample
    options: DiffusionOptions
    enqueued_at: float
    """time.monotonic() when it entered the queue."""


PostProcess = Callable[[WorkItem, TryOnOutput, dict[str, float]], object]
"""Makes an item's result value (ItemResult.value) from its engine output, on the worker's
finisher thread so the device is not kept waiting; it may add its own phases to the timings (ms).
An exception fails the item alone."""


def keep_output(_item: WorkItem, output: TryOnOutput, _timings_ms: dict[str, float]) -> object:
    """The default PostProcess: the engine's output as it is."""
    return output


@dataclass(frozen=True)
class Batch:
    """Items sharing one pipeline call, all with the same options (the schedule step's output)."""

    options: DiffusionOptions
    items: tuple[WorkItem, ...]


@dataclass(frozen=True)
class ItemOutcome:
    """One item after the execute step: exactly one of output and error is set."""

    item: WorkItem
    output: TryOnOutput | None = None
    error: VtonError | None = None


def by_job(items: Iterable[WorkItem]) -> dict[Job, list[int]]:
    """The items' indices grouped by their job, in first-seen order."""
    groups: dict[Job, list[int]] = {}
    for item in items:
        groups.setdefault(item.job, []).append(item.index)
    return groups
